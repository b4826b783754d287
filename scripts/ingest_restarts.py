"""RTMP recovery: how soon after an ingest comes back does the stream reach it again?

Starts a real `dreamstream serve --rtmp` pushing into a real RTMP server (ffmpeg -listen 1,
from imageio-ffmpeg), then kills the ingest N times, leaves it down a random 1-8 s, starts it
again and times the moment video arrives (the recorded file passes 20 kB). One JSON object.

    python scripts/ingest_restarts.py              # 10 restarts
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

from loadtest import ROOT, free_port, get


def ingest(port: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-listen", "1",
                             "-i", f"rtmp://127.0.0.1:{port}/live/test", "-c", "copy", "-f", "flv", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def seconds_until_video(path: Path, timeout: float = 60) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists() and path.stat().st_size > 20_000:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--restarts", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    port, http_port, ws_port = free_port(), free_port(), free_port()
    listener = ingest(port, tmp / "0.flv")
    server = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--device", "cpu", "--port", str(http_port),
                               "--ws-port", str(ws_port), "--rtmp", f"rtmp://127.0.0.1:{port}/live/test",
                               "--state-dir", str(tmp / "state")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    back = []
    try:
        first = seconds_until_video(tmp / "0.flv", timeout=180)
        for i in range(1, args.restarts + 1):
            time.sleep(random.uniform(2, 5))  # streaming a while
            listener.kill()
            listener.wait()
            time.sleep(random.uniform(1, 8))  # the ingest is down
            listener = ingest(port, tmp / f"{i}.flv")
            back.append(seconds_until_video(tmp / f"{i}.flv"))
            print(f"restart {i}: back after {back[-1]} s", file=sys.stderr)
        restarts = get(f"http://127.0.0.1:{http_port}/metrics")[1].decode()
    finally:
        listener.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    took = [b for b in back if b is not None]
    print(json.dumps({"restarts": args.restarts, "first_video_s": first and round(first, 2),
                      "back_s": [b and round(b, 2) for b in back], "max_s": round(max(took), 2) if took else None,
                      "never_back": len(back) - len(took), "within_6_s": sum(b < 6 for b in took),
                      "encoder_restarts_metric": [line for line in restarts.splitlines()
                                                  if line.startswith("dreamstream_encoder_restarts_total")]},
                     indent=1))


if __name__ == "__main__":
    main()
