"""The commands a user runs, measured: `dreamstream serve` idle, `serve --rtmp` into a local
RTMP listener (ffmpeg) and `serve --source` on a 30 fps file, in one run, as rows of JSON
for scripts/bench.py.

Each row: dreamed frames/s and gradient steps/s (the dream's work), the steps the frame
budget gave a frame, shown frames/s, each part's milliseconds per frame (from /metrics),
and for RTMP what the ingest received: frames per second and, of those, new pictures per
second (a frame that repeats the one before it, because the presenter fell behind, is not
one). The received file is decoded afterwards and consecutive frames compared, the overlay's
band left out.

    python scripts/bench_live.py --seconds 60      # both rows, one JSON object
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np

from loadtest import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
# A received frame is a new picture when it differs from the one before by more than this
# share of the median difference: a repeat that the encoder refines differs by a few tenths
# of a grey level, a picture moved on by the zoom by a few levels.
NEW_PICTURE = 0.5


def scrape(base: str) -> dict[str, float]:
    """Every sample on /metrics, keyed by name (labels kept): one dict."""
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(dreamstream_\S+) (\S+)$", text, re.M)}


def state(base: str) -> dict:
    with urllib.request.urlopen(base + "/api/state", timeout=10) as r:
        return json.loads(r.read())


def listener(port: int, out: Path) -> subprocess.Popen:
    """ffmpeg as a one-shot RTMP server that keeps what it receives, untouched."""
    import imageio_ffmpeg  # a test extra: scripts/gpu_check.py brings a listener of its own

    return subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-listen", "1",
                             "-i", f"rtmp://127.0.0.1:{port}/live/bench", "-c", "copy", "-f", "flv", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def received(path: Path, last_s: float) -> dict:
    """Frames a second and new pictures a second in the last `last_s` seconds of the file."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        times, diffs, prev = [], [], None
        for frame in c.decode(stream):
            grey = frame.to_ndarray(format="gray")
            grey = grey[: grey.shape[0] * 3 // 4].astype(np.int16)  # above the overlay's band
            times.append(float(frame.pts * stream.time_base))
            diffs.append(np.inf if prev is None else float(np.abs(grey - prev).mean()))
            prev = grey
    end = times[-1]
    window = [(t, d) for t, d in zip(times, diffs) if t > end - last_s]
    span = window[-1][0] - window[0][0]
    threshold = NEW_PICTURE * float(np.median([d for _, d in window[1:]]))
    return {"fps": round((len(window) - 1) / span, 2),
            "new_pictures_per_s": round(sum(d > threshold for _, d in window[1:]) / span, 2),
            "seconds": round(span, 1), "size": [stream.codec_context.width, stream.codec_context.height]}


def serve_row(seconds: float, rtmp: bool, extra: list[str] = (), listen=listener, settle_s: float = 5.0) -> dict:
    """One `serve` (with `--rtmp` into `listen(port, file)` when `rtmp`), measured for `seconds`
    after `settle_s` for the budget to settle."""
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp())
    args = [sys.executable, "-m", "stream", "serve", "--port", str(port), "--ws-port", str(ws_port),
            "--state-dir", str(tmp / "state"), *extra]
    ingest = None
    if rtmp:
        rtmp_port = free_port()
        ingest = listen(rtmp_port, tmp / "received.flv")
        args += ["--rtmp", f"rtmp://127.0.0.1:{rtmp_port}/live/bench"]
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_healthy(base)
        deadline = time.monotonic() + 60
        while rtmp and state(base)["stream"]["encoder"]["state"] != "live":
            if time.monotonic() > deadline:
                raise RuntimeError("the RTMP encoder never went live")
            time.sleep(0.5)
        time.sleep(settle_s)  # the budget settles
        m0, t0 = scrape(base), time.monotonic()
        time.sleep(seconds)
        m1, t1 = scrape(base), time.monotonic()
        shown = state(base)["fps"]["output"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if ingest is not None:
            ingest.send_signal(signal.SIGINT)  # ffmpeg finishes the file
            ingest.wait(30)
    dt = t1 - t0
    rate = lambda name: round((m1[name] - m0[name]) / dt, 2)  # noqa: E731
    row = {"dreamed_fps": rate("dreamstream_frames_total"), "steps_per_s": rate("dreamstream_dream_steps_total"),
           "steps_per_frame": m1["dreamstream_steps_per_frame"], "shown_fps": shown,
           "ms_per_frame": {k.split('"')[1]: v for k, v in m1.items() if k.startswith("dreamstream_frame_ms")}}
    if rtmp:
        row["sent"] = {"fps": rate("dreamstream_encoder_frames_total"),
                       "new_pictures_per_s": rate("dreamstream_encoder_pictures_total")}
        row["received"] = received(tmp / "received.flv", seconds)
    return row


def moving_clip(path: Path, seconds: float = 12.0, fps: int = 30, size=(640, 360)) -> Path:
    """A 30 fps clip of a textured scene panning and turning, written with PyAV: the file
    source for the bench, on any machine."""
    w, h = size
    rng = np.random.default_rng(0)
    big = cv2.resize((rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8), (2 * w, 2 * h),
                     interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(round(seconds * fps)):
            t = i / fps
            m = cv2.getRotationMatrix2D((w, h), 5 * np.sin(t), 1.0)
            m[:, 2] -= (w / 2 + 60 * np.sin(0.7 * t), h / 2 + 30 * np.cos(0.5 * t))
            rgb = cv2.warpAffine(big, m, (w, h), borderMode=cv2.BORDER_REFLECT)
            c.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        c.mux(stream.encode(None))
    return path


def ratios(base: list[dict], other: list[dict]) -> dict:
    """other / base for the dream's work, each from one round (a noisy machine slows both rows of
    a round alike), the median of the rounds and each round's."""
    each = {k: [round(b[k] / a[k], 3) for a, b in zip(base, other)] for k in ("dreamed_fps", "steps_per_s")}
    return {**{k: statistics.median(v) for k, v in each.items()}, "rounds": each}


def bench_serve(seconds: float, rounds: int = 2, extra: list[str] = ()) -> dict:
    """`serve` idle, `serve --rtmp` and `serve --source` (a 30 fps file) in interleaved rounds,
    and the ratios of the dream's work to the idle row's."""
    clip = moving_clip(Path(tempfile.mkdtemp()) / "moving30.mp4")
    idle, live, source = [], [], []
    for _ in range(rounds):
        idle.append(serve_row(seconds, rtmp=False, extra=extra))
        live.append(serve_row(seconds, rtmp=True, extra=extra))
        source.append(serve_row(seconds, rtmp=False, extra=[*extra, "--source", str(clip)]))
    return {"seconds": seconds, "serve": idle, "serve_rtmp": live, "serve_source_30fps": source,
            "rtmp_over_idle": ratios(idle, live), "source_over_idle": ratios(idle, source)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured per row")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rtmp-only", action="store_true")
    ap.add_argument("extra", nargs="*", help="more `serve` flags, e.g. -- --config FILE")
    args = ap.parse_args()
    if args.rtmp_only:
        print(json.dumps(serve_row(args.seconds, True, args.extra), indent=1))
    else:
        print(json.dumps(bench_serve(args.seconds, args.rounds, args.extra), indent=1))


if __name__ == "__main__":
    main()
