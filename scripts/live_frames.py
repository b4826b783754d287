"""The live stream as a viewer meets it: a real `dreamstream serve`, classes asked for in turn.

`serve` runs on free ports as it does for an audience: the dream at the rate this machine
serves it, the presenter at its output rate, every frame JPEG-encoded for the viewers. Each
class is asked for through POST /api/request, by a viewer of its own (a distinct address,
through loopback as a trusted proxy), a little before the last one's hold ends, so it follows
at once as a queued request does. Of every hold three shown frames are kept, read off
/frame.jpg (the JPEG every viewer gets): 5 s and 15 s after the switch, and the hold's last
moment. `scripts/blind_set.py` turns them into pictures for people to name. The server keeps
its queue in a folder of its own, so no earlier queue comes back into the run.
"""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from loadtest import ROOT, address, audience_config, free_port, get, wait_healthy

MOMENTS_S = (5.0, 15.0)  # frames kept this long after each switch, and at the hold's end
END_MARGIN_S = 0.6  # the "end" frame: this long before the hold runs out
QUEUE_AHEAD_S = 2.0  # the next class is asked for this long before the hold ends


@dataclass
class Shot:
    label: str  # the class asked for
    at_s: float  # seconds after the switch to it
    rgb: np.ndarray  # (H, W, 3) uint8, the shown frame


@dataclass
class LiveRun:
    shots: list[Shot]
    dream_fps: float  # dreamed frames a second over the run
    steps_per_frame: float  # gradient steps a dreamed frame, over the run
    output_fps: float  # shown frames a second at the end
    seconds: float


def moments(hold_s: float) -> list[float]:
    """When frames are kept in a hold of `hold_s` seconds (those before its end, and the end)."""
    return [m for m in MOMENTS_S if m < hold_s - END_MARGIN_S] + [round(hold_s - END_MARGIN_S, 2)]


def counters(base: str) -> tuple[float, float]:
    """(dreamed frames, gradient steps) so far, from /metrics."""
    text = get(base + "/metrics", 10)[1].decode()
    values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("dreamstream_"))
    return float(values["dreamstream_frames_total"]), float(values["dreamstream_dream_steps_total"])


def state(base: str) -> dict:
    return json.loads(get(base + "/api/state", 10)[1])


def ask(base: str, text: str, viewer: int) -> str:
    """POST a request as viewer number `viewer`; the id it was acknowledged with."""
    body = json.dumps({"text": text, "user": f"eval{viewer}"}).encode()
    req = urllib.request.Request(base + "/api/request", body, {"Content-Type": "application/json",
                                                               "X-Forwarded-For": address(viewer)})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["id"]


def shown_frame(base: str) -> np.ndarray:
    status, jpeg = get(base + "/frame.jpg", 10)
    if status != 200:
        raise RuntimeError(f"/frame.jpg answered {status}")
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def service(config: Path, hold_s: float, seed: int | None) -> Iterator[str]:
    """A real `serve` on free ports with `config` (loopback trusted as a proxy); its base URL."""
    port, ws_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "stream", "serve", "--config", str(audience_config(config, 0)), "--port", str(port),
           "--ws-port", str(ws_port), "--hold", str(hold_s), "-q",
           "--state-dir", tempfile.mkdtemp(prefix="dreamstream-live-")] + (["--seed", str(seed)] if seed is not None else [])
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        if proc.wait(30) != 0:
            raise RuntimeError(f"serve exited {proc.returncode}; its log: {log.name}")


def wait_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def playing_since(base: str, wanted: str, hold_s: float, timeout_s: float = 60.0) -> float:
    """The moment (this process's clock) the request `wanted` began to play."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        target = state(base)["target"]
        if target["id"] == wanted:
            return time.monotonic() - (hold_s - target["remaining_s"])
        time.sleep(0.05)
    raise RuntimeError(f"request {wanted} never began to play")


def run(config: Path, classes: list[str], hold_s: float, seed: int | None = None) -> LiveRun:
    """Each class for one hold, in turn; the shown frames at `moments(hold_s)` of each."""
    at = moments(hold_s)
    shots = []
    with service(config, hold_s, seed) as base:
        t0, (f0, s0) = time.monotonic(), counters(base)
        wanted = ask(base, classes[0], 0)
        with tqdm(total=len(classes) * len(at), desc="live (serve)", unit="frame") as bar:
            for i, label in enumerate(classes):
                start = playing_since(base, wanted, hold_s)
                for m in at:
                    wait_until(start + m)
                    shots.append(Shot(label, m, shown_frame(base)))
                    bar.update()
                    if i + 1 < len(classes) and m == at[-2 if len(at) > 1 else -1]:
                        wait_until(start + hold_s - QUEUE_AHEAD_S)  # queued: it follows at once
                        wanted = ask(base, classes[i + 1], i + 1)
        seconds = time.monotonic() - t0
        f1, s1 = counters(base)
        output_fps = state(base)["fps"]["output"]
    frames = max(1.0, f1 - f0)
    return LiveRun(shots, round(frames / seconds, 2), round((s1 - s0) / frames, 2), output_fps, round(seconds, 1))
