"""MJPEG over HTTP: `multipart/x-mixed-replace`, one JPEG part per frame.

Each viewer loops: await a frame newer than the last it sent, write it. The write awaits
the socket draining, so a slow viewer simply gets the newest frame when it is ready again
(skipping the ones in between); nothing queues up. A viewer that goes away ends its loop
quietly.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from .framebus import BusClosed

log = logging.getLogger(__name__)

BOUNDARY = "dreamframe"


def part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n"


async def stream(request: web.Request, service, max_fps: float, max_viewers: int) -> web.StreamResponse:
    if service.viewers["mjpeg"] >= max_viewers:  # a clear answer instead of a slower stream for all
        raise web.HTTPServiceUnavailable(text=f"the stream is full ({max_viewers} viewers); try /frame.jpg "
                                              "or come back later\n", headers={"Retry-After": "30"})
    resp = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-cache, no-store, private", "Pragma": "no-cache",
    })
    await resp.prepare(request)
    service.add_viewer("mjpeg", +1)
    shown = service.pipeline.shown
    min_gap = 1.0 / max_fps
    seq = 0
    try:
        while True:
            frame = await shown.next(after=seq)
            seq = frame.seq
            await resp.write(part(shown.jpeg(frame)))
            await asyncio.sleep(min_gap)
    except (ConnectionError, BusClosed):  # ConnectionError: reset, broken pipe, aiohttp's own
        pass  # the viewer left, or the server is shutting down
    finally:
        service.add_viewer("mjpeg", -1)
    return resp
