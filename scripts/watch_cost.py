"""What a viewer costs: bytes a second per viewer over MJPEG and over WebRTC (WHEP, the one
shared H.264 encode), and the server's CPU and dream rate with 0, 1 and 4 WebRTC viewers.

    python scripts/watch_cost.py                         # the defaults (480x270 shown)
    python scripts/watch_cost.py --output-size 1280x720
    python scripts/watch_cost.py --viewers 0,50 --no-decode   # 50 viewers, the dream beside them

The WebRTC viewers are aiortc clients in this process (as any WHEP player), decoding what they
get; their bytes are the encoder's output (`dreamstream_webrtc_bytes_total`; RTP and SRTP add ~4%).
`--no-decode`: the viewers receive, decrypt and reassemble every packet but decode none (50
H.264 decoders do not fit beside the dream on a 2-core machine; a viewer's decoder runs on its
own machine), and count packets received instead of frames. They still share this machine's
cores with the server (`viewers_cpu_percent` says how much they took). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
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


class NoDecoder:
    """aiortc's decoder for a viewer that only receives: every frame reassembled, none decoded."""

    def decode(self, encoded_frame) -> list:
        return []


def no_decoding() -> None:
    import aiortc.rtcrtpreceiver as receiver
    receiver.get_decoder = lambda codec: NoDecoder()


async def packets_received(pcs: list) -> int:
    total = 0
    for pc in pcs:
        for stats in (await pc.getStats()).values():
            if stats.type == "inbound-rtp":
                total += stats.packetsReceived
    return total


async def watch(base: str, each) -> RTCPeerConnection:
    """A WHEP viewer of `base`, as any player: each decoded frame to `each` until it is closed."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")

    @pc.on("track")
    def on_track(track):
        async def read():
            try:
                while True:
                    each(await track.recv())
            except MediaStreamError:  # closed at the end
                pass
        asyncio.ensure_future(read())
    await pc.setLocalDescription(await pc.createOffer())
    req = urllib.request.Request(base + "/whep", data=pc.localDescription.sdp.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    answer = await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=10).read().decode())
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def viewer(base: str, stop: asyncio.Event, frames: list, pcs: list) -> None:
    pc = await watch(base, lambda frame: frames.append(1))
    pcs.append(pc)
    await stop.wait()
    await pc.close()


def with_webrtc_viewers(base: str, pid: int, n: int, seconds: float) -> dict:
    async def run() -> dict:
        stop, frames, pcs = asyncio.Event(), [], []
        tasks = [asyncio.ensure_future(viewer(base, stop, frames, pcs)) for _ in range(n)]
        await asyncio.sleep(3 + n / 10)  # connected, and past the first keyframe

        def reading() -> tuple:  # all at one moment (the packets' stats are read apart: they take a while)
            return (time.monotonic(), len(frames), metric(base, "dreamstream_webrtc_bytes_total"), cpu_s(pid),
                    metric(base, "dreamstream_frames_total"), cpu_s(os.getpid()))
        p0, packets = time.monotonic(), await packets_received(pcs)
        t, got, sent, cpu, dreamed, here = reading()
        await asyncio.sleep(seconds)
        t1, got1, sent1, cpu1, dreamed1, here1 = reading()
        packets1, p1 = await packets_received(pcs), time.monotonic()
        took = t1 - t
        row = {"viewers": n, "connected": sum(pc.connectionState == "connected" for pc in pcs),
               "server_cpu_percent": round((cpu1 - cpu) / took * 100, 1),
               "viewers_cpu_percent": round((here1 - here) / took * 100, 1),
               "dream_fps": round((dreamed1 - dreamed) / took, 2),
               "encoded_bytes_per_s": round((sent1 - sent) / took),
               "frames_decoded_per_viewer_s": round((got1 - got) / took / max(n, 1), 1),
               "packets_per_viewer_s": round((packets1 - packets) / (p1 - p0) / max(n, 1), 1)}
        stop.set()
        await asyncio.gather(*tasks)
        return row
    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-size", default="")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--viewers", default="0,1,4", help="WebRTC viewers in each round (default 0,1,4)")
    ap.add_argument("--no-decode", action="store_true", help="the viewers decode nothing (see above)")
    args = ap.parse_args()
    if args.no_decode:
        no_decoding()
    extra = ["--output-size", args.output_size] if args.output_size else []
    tmp = Path(tempfile.mkdtemp(prefix="watch-cost-"))  # start_serve keeps its state beside the config
    config = tmp / "default.toml"
    viewers = max(int(n) for n in args.viewers.split(","))  # all from this address: the cap per address raised
    config.write_text((ROOT / "configs" / "default.toml").read_text() + f"\n[webrtc]\nmax_per_ip = {max(4, viewers)}\n")
    proc, base, _ = start_serve(config, (tmp / "serve.log").open("w"), *extra)
    try:
        wait_healthy(base, 180)
        time.sleep(3)
        mjpeg = mjpeg_bytes_per_s(base, args.seconds)
        rows = [with_webrtc_viewers(base, proc.pid, int(n), args.seconds) for n in args.viewers.split(",")]
        one = next((r["encoded_bytes_per_s"] for r in rows if r["viewers"]), 0)
        idle = rows[0]["dream_fps"] if rows[0]["viewers"] == 0 else None
        for row in rows:
            row["dream_vs_idle"] = round(row["dream_fps"] / idle, 2) if idle else None
        print(json.dumps({"output_size": args.output_size or "default", "mjpeg_bytes_per_s_per_viewer": round(mjpeg),
                          "webrtc_bytes_per_s_per_viewer": one, "decoding": not args.no_decode,
                          "mjpeg_over_webrtc": round(mjpeg / one, 1) if one else None, "webrtc": rows}, indent=1))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
