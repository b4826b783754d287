"""RTMP end to end: `serve --rtmp` pushes to a real local RTMP server (ffmpeg -listen 1)."""
import io
import json
import re
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np

from stream.outputs.overlay import draw_overlay

from .conftest import TEST_CONFIG, free_port, start_server, stop_server

KEY = "sk_live_do_not_print_me"
ARTIFACTS = Path(__file__).parent / "artifacts"


def listen(port: int, out):
    """A one-shot RTMP server that records what it receives, untouched, into an FLV file."""
    return subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-listen", "1",
                             "-i", f"rtmp://127.0.0.1:{port}/live/{KEY}", "-c", "copy", "-f", "flv", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def band_height(rgb: np.ndarray) -> int:
    """Rows of the overlay's dark band at the bottom: where, going up the left edge, the
    picture jumps from darkened (x0.35) to itself."""
    g = rgb[-300:, 3].astype(float).mean(axis=-1) + 1
    return 300 - int(np.argmax(g[:-1] / g[1:])) - 1


def wait_for_bytes(path, n, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.stat().st_size >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never reached {n} bytes")


def end(proc):
    proc.send_signal(signal.SIGINT)  # ffmpeg finishes the file
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_rtmp_push_is_h264_aac_with_2s_keyframes_and_survives_an_ingest_restart(tmp_path):
    port = free_port()
    first, second = tmp_path / "first.flv", tmp_path / "second.flv"
    ingest = listen(port, first)
    config = TEST_CONFIG + f"[rtmp]\nfps = 30.0\nbitrate_k = 800\n[clips]\nfolder = '{tmp_path / 'clips'}'\nseconds = 2.0\n"
    server = start_server(tmp_path, config, ["--rtmp", f"rtmp://127.0.0.1:{port}/live/{KEY}"])
    try:
        wait_for_bytes(first, 400_000)  # ~4 s at 800 kb/s
        # Names reach OpenCV's overlay: a lone surrogate (valid JSON) once killed the process.
        for name in ("a\udc80b", "\ud83d", "Zo\u00eb \u65e5\u672c", "x\u202e" * 30):
            status, ack = server.post("/api/request", json.dumps({"text": "daisy", "user": name}).encode())
            assert status in (200, 429), ack
            time.sleep(0.6)  # the overlay is drawn with it
        assert server.proc.poll() is None and server.get_json("/healthz")["ok"]
        status, headers, body = server.get("/preview.jpg")  # exactly what the ingest gets
        preview = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert preview.shape == (720, 1280, 3)
        assert server.get_json("/api/state")["queue"] == []  # the daisies were votes for what plays
        # No chat and nothing queued: one line (what plays, "N s left"), no "type !dream ... in
        # chat" for a chat that is not read. The band's height says how many lines it holds.
        lines = band_height(preview)
        one, two = (band_height(draw_overlay(np.full((720, 1280, 3), 200, np.uint8), ["daisy  - 3 s left", x][:n]))
                    for n, x in ((1, ""), (2, "next: lemon")))
        assert abs(lines - one) < abs(lines - two), (lines, one, two)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(ARTIFACTS / "rtmp_preview.jpg"), preview)
        assert server.get_json("/api/state")["size"] == [160, 96]  # the dream keeps its own size
        end(ingest)
        time.sleep(2)
        assert server.get_json("/healthz")["ok"]  # the page never stopped
        assert server.get_json("/api/state")["fps"]["dream"] > 0
        ingest = listen(port, second)  # the ingest comes back: the stream resumes by itself
        wait_for_bytes(second, 200_000, timeout=90)
        end(ingest)
        metrics = server.get("/metrics")[2].decode()
        restarts = float(re.search(r"^dreamstream_encoder_restarts_total (\S+)", metrics, re.M).group(1))
        assert restarts >= 1
        clips = server.get_json("/api/state")["clips"]  # dreams ended (4-s holds): their clips, remuxed
        assert clips, "no clip from the encoder's packets"
        with av.open(io.BytesIO(server.get(clips[0]["url"])[2])) as c:
            v = c.streams.video[0]
            assert v.codec_context.name == "h264" and (v.codec_context.width, v.codec_context.height) == (1280, 720)
            assert abs(float(v.duration * v.time_base) - clips[0]["seconds"]) < 0.2
    finally:
        rc, _ = stop_server(server)
        if ingest.poll() is None:
            ingest.kill()
    assert rc == 0
    log = server.log.read_text()
    assert KEY not in log and "live/****" in log

    with av.open(str(first)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        assert (v.codec_context.width, v.codec_context.height) == (1280, 720)  # RTMP's default output size
        assert v.average_rate == Fraction(30)
        packets = [p for p in c.demux(v) if p.pts is not None]
    times = [float(p.pts * p.time_base) for p in packets]
    keys = [float(p.pts * p.time_base) for p in packets if p.is_keyframe]
    assert times[-1] - times[0] > 3
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    assert gaps and all(abs(g - 2.0) < 0.05 for g in gaps), gaps
    fps = (len(times) - 1) / (times[-1] - times[0])
    assert abs(fps - 30) < 1, fps
