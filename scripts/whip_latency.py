"""From a frame a publisher sends to that frame shown by the stream: OBS's two ways in, WHIP
straight into `serve --source whip` against RTMP through a local nginx (the README's recipe)
into `serve --source rtmp://...`, on this machine.

    python scripts/whip_latency.py                 # 20 s of each

The publisher's picture flips between black and white every second, laid over with none of
the dream (`[source] mix = 0`), so each flip is unmistakable. The publisher notes when each
flip is handed to its encoder (aiortc's H.264 for WHIP, as OBS sends; libx264 zerolatency,
30 fps, a keyframe a second, pushed with PyAV for RTMP: OBS's settings in the README); this script notes when the
stream shows it (it reads /frame.jpg every 10 ms: a few ms late, so the figures err high by
that much), both on this machine's clock. Prints one JSON object: each path's median and max
over the flips seen.
"""
from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
from latency import latencies, server_flips
from loadtest import free_port, start_serve, wait_healthy
from peers import start_nginx, stop

FPS = 30
TOKEN = "latency"


def flip_picture(n: int) -> tuple[np.ndarray, bool]:
    bright = (n // FPS) % 2 == 1
    return np.full((360, 640, 3), 255 if bright else 0, np.uint8), bright


def noted(sent: list, n: int) -> None:
    """A flip handed to the encoder, on this machine's clock (ms)."""
    if n % FPS == 0 and n:
        sent.append((time.time() * 1000, flip_picture(n)[1]))


async def publish_whip(base: str, seconds: float, sent: list) -> None:
    import aiohttp
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

    class Flips(VideoStreamTrack):
        def __init__(self):
            super().__init__()
            self.n, self.start = 0, time.monotonic()

        async def recv(self):
            await asyncio.sleep(max(0.0, self.start + self.n / FPS - time.monotonic()))
            frame = av.VideoFrame.from_ndarray(flip_picture(self.n)[0], format="rgb24")
            frame.pts, frame.time_base = self.n, fractions.Fraction(1, FPS)
            noted(sent, self.n)
            self.n += 1
            return frame

    pc = RTCPeerConnection()
    video = pc.addTransceiver(Flips(), direction="sendonly")
    video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs  # H.264, as OBS sends
                               if c.mimeType in ("video/H264", "video/rtx")])
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"}
        async with session.post(base + "/whip", data=pc.localDescription.sdp, headers=headers) as r:
            assert r.status == 201, await r.text()
            answer, location = await r.text(), r.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await asyncio.sleep(seconds)
        async with session.delete(base + location, headers={"Authorization": f"Bearer {TOKEN}"}):
            pass
    await pc.close()


def publish_rtmp(url: str, stopping: threading.Event, sent: list) -> None:
    with av.open(url, "w", format="flv") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "tune": "zerolatency",
                                                            "g": str(FPS), "bf": "0"})
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        start, n = time.monotonic(), 0
        while not stopping.is_set():
            time.sleep(max(0.0, start + n / FPS - time.monotonic()))
            frame = av.VideoFrame.from_ndarray(flip_picture(n)[0], format="rgb24")
            frame.pts = n
            noted(sent, n)
            out.mux(video.encode(frame))
            n += 1


def measure(base: str, publish, sent: list | None = None) -> dict:
    """Polls the shown picture while `publish(sent)` runs; the latencies of the flips."""
    stopping, shown, sent = threading.Event(), [], [] if sent is None else sent
    poller = threading.Thread(target=server_flips, args=(base, stopping, shown))
    poller.start()
    try:
        publish(sent)
    finally:
        stopping.set()
        poller.join()
    took = latencies(sent, shown)
    return {"flips": len(took), "median_ms": round(statistics.median(took)) if took else None,
            "max_ms": round(max(took)) if took else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="whip-latency-"))
    base_config = 'device = "cpu"\n[dream]\nsize = [160, 90]\n[source]\nmix = 0.0\n'
    result = {}

    config = tmp / "whip.toml"
    config.write_text(base_config + f'input = "whip"\nwhip_token = "{TOKEN}"\n')
    proc, base, _ = start_serve(config, (tmp / "serve-whip.log").open("w"))
    try:
        wait_healthy(base, 180)
        result["whip"] = measure(base, lambda sent: asyncio.run(publish_whip(base, args.seconds, sent)))
    finally:
        proc.terminate()
        proc.wait(10)

    rtmp_port = free_port()
    nginx = start_nginx(tmp, rtmp_port, free_port())
    url = f"rtmp://127.0.0.1:{rtmp_port}/in/latency"
    pushing, sent = threading.Event(), []
    pusher = threading.Thread(target=publish_rtmp, args=(url, pushing, sent))
    pusher.start()  # live before serve opens it (a stream that is not there is an error at start)
    try:
        time.sleep(2)
        config = tmp / "rtmp.toml"
        config.write_text(base_config + f'input = "{url}"\n')
        proc, base, _ = start_serve(config, (tmp / "serve-rtmp.log").open("w"))
        try:
            wait_healthy(base, 180)
            result["rtmp_nginx"] = measure(base, lambda _: time.sleep(args.seconds), sent)
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        pushing.set()
        pusher.join()
        stop(nginx)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
