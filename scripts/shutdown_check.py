"""Shutdown under load: does SIGTERM or SIGINT end `serve` with exit 0 within 2 s, every time?

Each run starts a real `dreamstream serve` dreaming at 1280x720 (a frame takes seconds on a
CPU, so the signal lands mid-frame), attaches, from niced client processes (scripts/loadtest.py's),
MJPEG viewers, stalled viewers (they stop reading), websocket clients that take the state
pushes, and stalled websocket clients (they will not answer a close), waits until the server
counts them all, then a random 0.5-2.5 s more, sends SIGTERM (even runs) or SIGINT (odd runs)
and times the exit. The server's own account of its shutdown (the "stopped in" line: how long
each close took) is kept with each run. One JSON object.

    python scripts/shutdown_check.py                # 20 runs: 200 viewers, 50 stalled, 100 + 20 websockets
    python scripts/shutdown_check.py --runs 4 --size 480x270 --logs /tmp/shutdown-logs
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtest import ROOT, audience_config, client_process, free_port, get, split, wait_healthy

PROCESSES = 4  # client processes: 370 clients from one would be a slow audience, not a big one


def attached(base: str, mjpeg: int, websockets: int, timeout_s: float = 60) -> dict:
    """Until the server counts every client (or timeout_s): what it counted."""
    end, state = time.monotonic() + timeout_s, {}
    while time.monotonic() < end:
        try:
            state = json.loads(get(base + "/api/state", 5)[1])
            if state["viewers"] >= mjpeg and state["stream"]["listeners"] >= websockets:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    return {"mjpeg": state.get("viewers"), "websocket": state.get("stream", {}).get("listeners")}


def one_run(i: int, args, config) -> dict:
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(Path(args.logs) / f"run{i + 1}.log", "w+") if args.logs else tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--config", str(config), "--size", args.size,
                             "--device", "cpu", "--port", str(port), "--ws-port", str(ws_port),
                             "--state-dir", tempfile.mkdtemp(prefix="dreamstream-shutdown-")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_healthy(base)
    counts = [split(n, PROCESSES) for n in (args.viewers, args.stalled, args.websockets, args.stalled_websockets)]
    clients = [mp.Process(target=client_process,
                          args=(base, f"ws://127.0.0.1:{ws_port}/", counts[0][k], counts[1][k], 0, 120.0,
                                k * 1000, mp.Queue(), counts[2][k], counts[3][k]), daemon=True)
               for k in range(PROCESSES)]
    for c in clients:
        c.start()
    seen = attached(base, args.viewers + args.stalled, args.websockets + args.stalled_websockets)
    time.sleep(random.uniform(0.5, 2.5))
    sig = signal.SIGINT if i % 2 else signal.SIGTERM
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed after 30 s"
    took = time.monotonic() - t0
    for c in clients:
        c.kill()
    log.seek(0)
    text = log.read()
    log.close()
    stopped = re.search(r"stopped in .*", text)
    return {"signal": sig.name, "exit_code": rc, "seconds": round(took, 2), "attached": seen,
            "server_says": stopped.group(0) if stopped else None,
            "traceback": "Traceback" in text or "terminate called" in text}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--size", default="1280x720", help="the dream's size")
    ap.add_argument("--viewers", type=int, default=200, help="MJPEG viewers")
    ap.add_argument("--stalled", type=int, default=50, help="MJPEG viewers that stop reading")
    ap.add_argument("--websockets", type=int, default=100, help="websocket clients taking state pushes")
    ap.add_argument("--stalled-websockets", type=int, default=20, help="websocket clients that stop reading")
    ap.add_argument("--logs", metavar="DIR", help="keep each run's server log here (default: none kept)")
    args = ap.parse_args()
    config = audience_config(ROOT / "configs" / "default.toml", args.viewers + args.stalled)
    runs = []
    for i in range(args.runs):
        runs.append(one_run(i, args, config))
        print(f"run {i + 1}/{args.runs}: {runs[-1]}", file=sys.stderr)
    times = [r["seconds"] for r in runs]
    print(json.dumps({"runs": args.runs, "size": args.size, "viewers": args.viewers, "stalled": args.stalled,
                      "websockets": args.websockets, "stalled_websockets": args.stalled_websockets,
                      "all_exit_0": all(r["exit_code"] == 0 for r in runs),
                      "within_2_s": sum(t < 2 for t in times), "seconds": {"max": max(times), "min": min(times)},
                      "tracebacks": sum(r["traceback"] for r in runs), "each": runs}, indent=1))


if __name__ == "__main__":
    main()
