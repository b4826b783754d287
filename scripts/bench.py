"""Performance, as one JSON object, every ratio measured in the same run on this machine.

- per size: gradient steps/s of the naive reference step (scripts/naive.py, timed in a child
  process with default settings, between the loop's rounds) and of the
  project's loop with default settings, their ratio, and optimized frames/s;
- JPEG encode time per frame;
- the presenter's time per shown frame at the stream size, 1280x720 and 1920x1080;
- motion in time: a network-free stand-in dreamer as slow as a busy CPU and as fast as a GPU,
  through the real pipeline, and the zoom per second measured from the shown pictures;
- the dream rate of a real `dreamstream serve` at the default stream size with 0 viewers,
  then with 50 MJPEG viewers and 20 websocket clients attached, their ratio, and the
  output frame rate the presenter held;
- a live source's cost per frame: the residual carried along the flow at 480x270 and 720p;
- what a user runs (scripts/bench_live.py): `serve` idle, `serve --rtmp` into a local
  listener and `serve --source` on a 30 fps file, interleaved rounds, with dreamed frames/s, steps/s, shown frames/s, what the
  ingest received, each part's ms per frame, and the ratios between them;
- the queue kept in SQLite (stream/queue/store.py): a request's cost from text to ack with the store
  and without, interleaved, and the dream thread's per-frame `current()` with and without;
- peak resident memory.

    python scripts/bench.py              # about 8-10 minutes on a 2-core CPU
    python scripts/bench.py --quick      # fewer repetitions, for a smoke run
    python scripts/bench.py --only queue_store   # the store's rows alone (seconds)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import torch
from bench_live import bench_serve
from loadtest import free_port, wait_healthy
from naive import naive_steps_per_s
from peers import REDIS_SERVER, RedisServer

from dreamer.classes import parse
from dreamer.flow import Flow
from dreamer.loop import Dreamer, DreamSettings
from dreamer.models import load_model, resolve_device
from dreamer.runtime import tune_for_cpu_dreaming
from stream.config import load_config
from stream.core.framebus import Frame
from stream.queue.requests import QueuePolicy, RequestQueue
from stream.queue.shared import RedisShared
from stream.queue.store import SqliteStore
from stream.spine.pipeline import Pipeline
from stream.spine.presenter import Motion

ROOT = Path(__file__).resolve().parent.parent


class NaiveProcess:
    """The naive step timed in a child process, on request, between the loop's rounds.

    A process of its own so that it runs as a first attempt would: the loop raises the C
    allocator's thresholds for the whole process (dreamer/runtime.py), which would
    otherwise speed up the reference too and hide that gain from the ratio.
    """

    def __init__(self, model_name: str, device: torch.device):
        self.proc = subprocess.Popen([sys.executable, __file__, "--naive-worker", "--model", model_name,
                                      "--device", str(device)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT)

    def steps_per_s(self, size, seconds: float) -> float:
        self.proc.stdin.write(f"{size[0]} {size[1]} {seconds}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def naive_worker(model_name: str, device: torch.device) -> None:
    """The child: the plain network, then one "W H SECONDS" request per line -> steps/s."""
    model = load_model(model_name, device, optimize=False)
    for line in sys.stdin:
        w, h, seconds = line.split()
        print(naive_steps_per_s(model, (int(w), int(h)), device, float(seconds)), flush=True)


def time_loop(model, settings, seconds: float) -> tuple[float, float]:
    d = Dreamer(model, settings, seed=0)
    d.set_target(parse("volcano"))
    for _ in range(2):
        d.frame()  # frame() ends in a host copy, so timing needs no extra sync
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        d.frame()
        n += 1
    dt = time.perf_counter() - t0
    return n * settings.steps / dt, n / dt


def jpeg_ms(size) -> float:
    w, h = size
    rgb = (torch.rand(h, w, 3) * 255).to(torch.uint8).numpy()
    t0 = time.perf_counter()
    for _ in range(50):
        cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return (time.perf_counter() - t0) / 50 * 1000


def presenter_ms(dream_size, output_size, frames: int = 150) -> float:
    """One shown frame at `output_size` from a dreamed frame of `dream_size` (zoom, upscale,
    sharpen on each new dreamed frame, cross-fade), in ms: what --output-size costs the
    presenter thread. A new dreamed frame every 5 shown ones, as at 25 fps from 5 dreamed."""
    w, h = dream_size
    rgbs = [(torch.rand(h, w, 3) * 255).to(torch.uint8).numpy() for _ in range(2)]
    motion = Motion(DreamSettings(), size=output_size)
    t0 = time.perf_counter()
    for i in range(frames):
        k = i // 5
        motion.frame(Frame(k, rgbs[k % 2], k * 0.2, k * 0.2), i / 25)
    return (time.perf_counter() - t0) / frames * 1000


def flow_ms(size, rounds: int = 30) -> float:
    """Carrying a residual onto the next frame along the flow (two DIS flows at half size, the
    forward-backward check, one remap), in ms: what a live source costs per frame."""
    w, h = size
    rng = np.random.default_rng(0)
    a = cv2.resize((rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8), size, interpolation=cv2.INTER_CUBIC)
    b = np.roll(a, (2, 3), axis=(0, 1))
    residual = rng.standard_normal((h, w, 3)).astype(np.float32)
    flow = Flow()
    flow.carry(residual, a, b)
    t0 = time.perf_counter()
    for _ in range(rounds):
        flow.carry(residual, a, b)
    return (time.perf_counter() - t0) / rounds * 1000


# -- motion in time: a stand-in dreamer at any rate ----------------------------------------
class StandIn(Dreamer):
    """The real dreamer (its motion, blur, budgeted steps) with each gradient step replaced by
    a sleep: a machine as slow or as fast as `step_s` says, without a network."""

    def __init__(self, settings: DreamSettings, step_s: float):
        super().__init__(torch.nn.Linear(1, 1), settings, seed=0)
        self.step_s = step_s

    def step(self, objective, prior_grad=None):
        time.sleep(self.step_s)


def zoom_between(a: np.ndarray, b: np.ndarray) -> float:
    """How much larger b shows the picture than a, registered by OpenCV's ECC (affine)."""
    ga, gb = (cv2.GaussianBlur(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), (0, 0), 1.5).astype(np.float32) for x in (a, b))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    _, warp = cv2.findTransformECC(ga, gb, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, criteria, None, 5)
    return float(np.sqrt(abs(np.linalg.det(warp[:, :2]))))  # the warp maps a's points into b


def bench_motion(seconds: float) -> list[dict]:
    """The shown picture's zoom per second with a dream as slow as a busy CPU (0.5 s a step),
    a laptop's (1/6 s) and faster than the output (10 ms): the setting's 5%/s each time."""
    rows = []
    for step_s in (0.5, 1 / 6, 0.01):
        settings = DreamSettings(size=(320, 180), steps=1, min_steps=1, max_steps=1, fps=25.0, blur_per_s=0.0,
                                 start_blur=4.0)
        pipeline = Pipeline(None, settings, 0, RequestQueue(QueuePolicy(), ["volcano"]), 25.0,
                            make_dreamer=lambda: StandIn(settings, step_s))
        pipeline.start()
        shots, seq, end = [], 0, time.monotonic() + seconds + 1
        try:
            while time.monotonic() < end:
                frame = pipeline.shown.wait(seq, 1.0)
                if frame is not None:
                    seq = frame.seq
                    shots.append((frame.time, frame.rgb))
        finally:
            pipeline.stop()
        shots = [s for s in shots if s[0] > shots[0][0] + 1.0]  # past the first frames
        rates = []
        for t, rgb in shots[::10]:  # each against the shown frame a second later
            later = min(shots, key=lambda s: abs(s[0] - (t + 1.0)))
            if abs(later[0] - t - 1.0) < 0.03:
                rates.append(zoom_between(rgb, later[1]) ** (1.0 / (later[0] - t)) - 1.0)
        rows.append({"step_s": round(step_s, 3), "dreamed_fps": round(pipeline.engine.frames / (seconds + 1), 2),
                     "zoom_per_s": round(statistics.median(rates), 4), "setting": settings.zoom_per_s,
                     "pairs": len(rates)})
    return rows


# -- viewers: a real server, real clients --------------------------------------------------
def frames_total(base: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    return float(re.search(r"^dreamstream_frames_total (\S+)", text, re.M).group(1))


def output_fps(base: str) -> float:
    """The presenter's measured output rate, as /api/state reports it."""
    with urllib.request.urlopen(base + "/api/state", timeout=10) as r:
        return json.loads(r.read())["fps"]["output"]


def dream_rate(base: str, seconds: float) -> float:
    f0, t0 = frames_total(base), time.monotonic()
    time.sleep(seconds)
    return (frames_total(base) - f0) / (time.monotonic() - t0)


def start_clients(base: str, ws_url: str, mjpeg: int, ws: int) -> tuple[threading.Event, list]:
    """MJPEG readers and websocket listeners in a thread of their own; returns (stop, counters)."""
    import aiohttp
    from websockets.asyncio.client import connect

    stop, got = threading.Event(), [0, 0]

    async def viewer(session):
        async with session.get(base + "/stream.mjpg") as r:
            async for chunk in r.content.iter_chunked(65536):
                got[0] += len(chunk)
                if stop.is_set():
                    return

    async def listener():
        async with connect(ws_url) as c:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(c.recv(), 0.5)
                    got[1] += 1
                except asyncio.TimeoutError:
                    pass

    async def main():
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(viewer(session)) for _ in range(mjpeg)]
            tasks += [asyncio.create_task(listener()) for _ in range(ws)]
            while not stop.is_set():
                await asyncio.sleep(0.2)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    threading.Thread(target=lambda: asyncio.run(main()), name="bench-clients", daemon=True).start()
    return stop, got


def bench_viewers(seconds: float, size: str) -> dict:
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = ROOT / "configs" / "default.toml"
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--config", str(cfg), "--port", str(port),
                             "--ws-port", str(ws_port), "--size", size, "--device", "cpu",
                             "--state-dir", tempfile.mkdtemp(prefix="dreamstream-bench-")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_healthy(base)
        time.sleep(2)  # let the first frames settle
        idle = dream_rate(base, seconds)
        output_idle = output_fps(base)
        stop, got = start_clients(base, f"ws://127.0.0.1:{ws_port}/", 50, 20)
        time.sleep(2)
        loaded = dream_rate(base, seconds)
        output_loaded = output_fps(base)
        stop.set()
        return {"size": size, "0": round(idle, 3), "50": round(loaded, 3), "ratio": round(loaded / idle, 3),
                "output_fps": {"0": output_idle, "50": output_loaded},
                "mjpeg_bytes_read": got[0], "ws_messages": got[1]}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def bench_queue_store(rounds: int = 5, requests: int = 400) -> dict:
    """A request from text to ack (parse, rules, and with a store the state handed to its
    writer), the time until the writer has committed it, with a queue kept at its usual fill
    (max_queue 20: each request is followed by a skip, not timed), and the dream thread's
    `current()`; rounds alternate store and none, and a queue shared through a local
    redis-server (appendonly, as the README runs it) where Debian's is installed."""
    labels = ["volcano", "jellyfish", "pizza", "coral reef", "peafowl", "monarch butterfly", "strawberry",
              "lighthouse", "goldfish", "daisy", "castle", "broccoli", "lemon", "orange", "banana",
              "tabby cat", "golden retriever", "pizza + volcano", "space shuttle", "mushroom", "daisy + bee"]
    kinds = ("none", "sqlite") + (("redis",) if REDIS_SERVER else ())
    times: dict[str, list[float]] = {k: [] for k in kinds}
    current: dict[str, list[float]] = {k: [] for k in kinds}
    on_disk: list[float] = []
    server = RedisServer(Path(tempfile.mkdtemp(prefix="dreamstream-bench-redis-"))).start() if REDIS_SERVER else None
    for r in range(rounds):
        for kind in kinds:
            store = SqliteStore(tempfile.mkdtemp(prefix="dreamstream-bench-")) if kind == "sqlite" else None
            shared = RedisShared(server.url, f"bench{r}:") if kind == "redis" else None
            q = RequestQueue(QueuePolicy(hold_s=1e9, cooldown_s=0, burst=10**6, max_queue=20), labels, store=store,
                             shared=shared)
            for i in range(19):  # a full queue: what every save writes
                q.submit(labels[i % len(labels)], f"viewer-{i:04d}-with-a-name-of-some-length")
            for i in range(requests):
                t = time.perf_counter()
                q.submit(labels[(i + r) % len(labels)], f"viewer {i}", f"key {i}")
                times[kind].append(time.perf_counter() - t)
                if store is not None:  # the writer thread's commit: when the ack is on disk
                    store.flush()
                    on_disk.append(time.perf_counter() - t)
                t = time.perf_counter()
                q.current()
                current[kind].append(time.perf_counter() - t)
                if len(q.snapshot()["queue"]) >= 19:
                    q.skip()
            if store is not None:
                store.close()
    if server is not None:
        server.kill()

    def ms(xs: list[float]) -> dict:
        xs = sorted(xs)
        return {"median": round(1e3 * statistics.median(xs), 4), "p99": round(1e3 * xs[int(0.99 * len(xs))], 4)}

    def adds_ms(kind: str) -> float:
        """What keeping the queue this way adds to a request's median, in ms."""
        return round(1e3 * (statistics.median(times[kind]) - statistics.median(times["none"])), 4)

    return {"request_ms": {k: ms(v) for k, v in times.items()},
            "store_adds_ms_median": adds_ms("sqlite"),
            **({"redis_adds_ms_median": adds_ms("redis")} if "redis" in times else {}),
            "ack_on_disk_ms": ms(on_disk),
            "current_ms": {k: ms(v) for k, v in current.items()}, "requests": rounds * requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seconds", type=float, default=12.0, help="per measurement")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-viewers", action="store_true")
    ap.add_argument("--no-serve", action="store_true", help="skip the serve / serve --rtmp rows")
    ap.add_argument("--serve-seconds", type=float, help="per serve row (default 60; 10 with --quick)")
    ap.add_argument("--only", choices=["queue_store"], help="one row alone")
    ap.add_argument("--naive-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    seconds = 3.0 if args.quick else args.seconds

    device = resolve_device(args.device)
    if args.naive_worker:
        return naive_worker(args.model, device)
    if args.only == "queue_store":
        return print(json.dumps({"queue_store": bench_queue_store()}, indent=1))
    cfg = load_config()
    stream_size = cfg.dream.size
    model = load_model(cfg.model, device)
    tune_for_cpu_dreaming(device)
    reference = NaiveProcess(cfg.model, device)  # the naive step gets the plain network
    sizes = sorted({(320, 180), (640, 360), stream_size} | ({(1280, 720)} if device.type == "cuda" else set()))
    out = {"device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda" else
           f"{os.cpu_count()}-core CPU", "torch": torch.__version__, "model": cfg.model,
           "threads": torch.get_num_threads(), "steps_per_frame": cfg.dream.steps, "sizes": {}}
    for size in sizes:
        cfg.dream.size = size
        # Interleaved rounds, median of each: a busy neighbour on a small machine then slows
        # both sides of a round alike instead of skewing the ratio.
        rounds = [(reference.steps_per_s(size, seconds / 3), *time_loop(model, cfg.dream, seconds / 3))
                  for _ in range(3)]
        naive, steps, fps = (statistics.median(r[i] for r in rounds) for i in range(3))
        ratio = statistics.median(r[1] / r[0] for r in rounds)
        out["sizes"][f"{size[0]}x{size[1]}"] = {"naive_steps_per_s": round(naive, 2), "steps_per_s": round(steps, 2),
                                               "ratio": round(ratio, 2), "optimized_fps": round(fps, 2),
                                               "ratio_rounds": [round(r[1] / r[0], 2) for r in rounds],
                                               "jpeg_ms": round(jpeg_ms(size), 2)}
    reference.close()
    out["presenter_ms"] = {f"{w}x{h}": round(presenter_ms(stream_size, (w, h)), 2)
                           for w, h in (stream_size, (1280, 720), (1920, 1080))}
    out["jpeg_ms_1280x720"] = round(jpeg_ms((1280, 720)), 2)
    out["flow_ms"] = {f"{w}x{h}": round(flow_ms((w, h)), 2) for w, h in (stream_size, (1280, 720))}
    out["motion"] = bench_motion(seconds)
    out["queue_store"] = bench_queue_store(rounds=2 if args.quick else 5)
    if not args.no_viewers:
        out["viewers"] = bench_viewers(seconds * 1.5, f"{stream_size[0]}x{stream_size[1]}")
    if not args.no_serve:
        out["live"] = bench_serve(args.serve_seconds or (10.0 if args.quick else 60.0),
                                  rounds=1 if args.quick else 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
