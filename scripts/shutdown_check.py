"""Shutdown under load: does SIGTERM or SIGINT end `serve` with exit 0 within 2 s, every time?

Each run starts a real `dreamstream serve` dreaming at 1280x720 (a frame takes seconds on a
CPU, so the signal lands mid-frame), attaches MJPEG viewers and flooding websocket clients
from a niced client process (scripts/loadtest.py's), waits a random 0.5-2.5 s, sends SIGTERM
(even runs) or SIGINT (odd runs) and times the exit. One JSON object.

    python scripts/shutdown_check.py                # 20 runs
    python scripts/shutdown_check.py --runs 4 --size 480x270
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import signal
import subprocess
import sys
import tempfile
import time

from loadtest import ROOT, client_process, free_port, wait_healthy


def one_run(i: int, size: str, viewers: int, flooders: int) -> dict:
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile("w+")  # gone when closed
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--size", size, "--device", "cpu",
                             "--port", str(port), "--ws-port", str(ws_port)], stdout=log, stderr=subprocess.STDOUT,
                            cwd=ROOT)
    wait_healthy(base)
    clients = mp.Process(target=client_process, args=(base, f"ws://127.0.0.1:{ws_port}/", viewers, 0, flooders,
                                                      30.0, 0, mp.Queue()), daemon=True)
    clients.start()
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
    clients.kill()
    log.seek(0)
    text = log.read()
    log.close()
    return {"signal": sig.name, "exit_code": rc, "seconds": round(took, 2),
            "traceback": "Traceback" in text or "terminate called" in text}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--size", default="1280x720", help="the dream's size")
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--flooders", type=int, default=10)
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        runs.append(one_run(i, args.size, args.viewers, args.flooders))
        print(f"run {i + 1}/{args.runs}: {runs[-1]}", file=sys.stderr)
    times = [r["seconds"] for r in runs]
    print(json.dumps({"runs": args.runs, "size": args.size, "viewers": args.viewers, "flooders": args.flooders,
                      "all_exit_0": all(r["exit_code"] == 0 for r in runs),
                      "within_2_s": sum(t < 2 for t in times), "seconds": {"max": max(times), "min": min(times)},
                      "tracebacks": sum(r["traceback"] for r in runs), "each": runs}, indent=1))


if __name__ == "__main__":
    main()
