"""What a viewer costs: bytes a second per viewer over MJPEG and over WebRTC (WHEP, the one
shared H.264 encode), and the server's CPU and dream rate with 0, 1 and 4 WebRTC viewers.

    python scripts/watch_cost.py                         # the defaults (480x270 shown)
    python scripts/watch_cost.py --output-size 1280x720

The WebRTC viewers are aiortc clients in this process (as any WHEP player), decoding what they
get; their bytes are the encoder's output (`dreamstream_webrtc_bytes_total`; RTP and SRTP add ~4%).
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from failover import cpu_s
from loadtest import start_serve, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise KeyError(name)


def mjpeg_bytes_per_s(base: str, seconds: float) -> float:
    with urllib.request.urlopen(base + "/stream.mjpg", timeout=10) as r:
        r.read(65536)  # the first frame and the headers: not counted
        start, n = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            n += len(r.read(65536))
    return n / (time.monotonic() - start)


async def viewer(base: str, stop: asyncio.Event, frames: list) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")

    @pc.on("track")
    def on_track(track):
        async def read():
            try:
                while not stop.is_set():
                    await track.recv()
                    frames.append(1)
            except MediaStreamError:  # closed at the end
                pass
        asyncio.ensure_future(read())
    await pc.setLocalDescription(await pc.createOffer())
    req = urllib.request.Request(base + "/whep", data=pc.localDescription.sdp.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    answer = await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=10).read().decode())
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await stop.wait()
    await pc.close()


def with_webrtc_viewers(base: str, pid: int, n: int, seconds: float) -> dict:
    async def run() -> dict:
        stop, frames = asyncio.Event(), []
        tasks = [asyncio.ensure_future(viewer(base, stop, frames)) for _ in range(n)]
        await asyncio.sleep(3)  # connected, and past the first keyframe
        got, sent, cpu, dreamed = len(frames), metric(base, "dreamstream_webrtc_bytes_total"), cpu_s(pid), \
            metric(base, "dreamstream_frames_total")
        t = time.monotonic()
        await asyncio.sleep(seconds)
        took = time.monotonic() - t
        row = {"viewers": n, "server_cpu_percent": round((cpu_s(pid) - cpu) / took * 100, 1),
               "dream_fps": round((metric(base, "dreamstream_frames_total") - dreamed) / took, 2),
               "encoded_bytes_per_s": round((metric(base, "dreamstream_webrtc_bytes_total") - sent) / took),
               "frames_decoded_per_viewer_s": round((len(frames) - got) / took / max(n, 1), 1)}
        stop.set()
        await asyncio.gather(*tasks)
        return row
    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-size", default="")
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    extra = ["--output-size", args.output_size] if args.output_size else []
    tmp = Path(tempfile.mkdtemp(prefix="watch-cost-"))  # start_serve keeps its state beside the config
    config = tmp / "default.toml"
    config.write_text((ROOT / "configs" / "default.toml").read_text())
    proc, base, _ = start_serve(config, (tmp / "serve.log").open("w"), *extra)
    try:
        wait_healthy(base, 180)
        time.sleep(3)
        mjpeg = mjpeg_bytes_per_s(base, args.seconds)
        rows = [with_webrtc_viewers(base, proc.pid, n, args.seconds) for n in (0, 1, 4)]
        one = rows[1]["encoded_bytes_per_s"]
        print(json.dumps({"output_size": args.output_size or "default", "mjpeg_bytes_per_s_per_viewer": round(mjpeg),
                          "webrtc_bytes_per_s_per_viewer": one,
                          "mjpeg_over_webrtc": round(mjpeg / one, 1) if one else None, "webrtc": rows}, indent=1))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
