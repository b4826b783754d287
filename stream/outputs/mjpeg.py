"""MJPEG over HTTP: `multipart/x-mixed-replace`, one JPEG part per frame.

Each viewer loops: await a frame newer than the last it sent, write it. The write awaits
the socket draining, so a slow viewer simply gets the newest frame when it is ready again
(skipping the ones in between); nothing queues up. A viewer that goes away ends its loop
quietly; one that stalls for STALL_S is let go, and at shutdown all are let go at once
(`drop_all`). The chunk sent is built once per frame.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..config import ServeSettings
from ..core.framebus import BusClosed

log = logging.getLogger(__name__)

BOUNDARY = "dreamframe"


STALL_S = 10.0  # a viewer that takes no frame for this long is let go


class Parts:
    """The multipart chunk of the newest frame, built once for every viewer (not once each)."""

    def __init__(self) -> None:
        self._frame, self._part = None, b""

    def of(self, bus, frame) -> bytes:
        # keyed by the frame itself, not its seq: every bus counts from 1
        if frame is not self._frame:
            jpeg = bus.jpeg(frame)
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            self._frame, self._part = frame, head + jpeg + b"\r\n"
        return self._part


PARTS = Parts()


async def stream(request: web.Request, service, s: ServeSettings) -> web.StreamResponse:
    """One viewer. Each gets at most `mjpeg_max_fps`, and all together at most `mjpeg_budget_fps`
    frames a second: a big audience gets fewer frames each rather than the dream fewer cores."""
    if service.viewers["mjpeg"] >= s.max_viewers:  # a clear answer instead of a slower stream for all
        raise web.HTTPServiceUnavailable(text=f"the stream is full ({s.max_viewers} viewers); try /frame.jpg "
                                              "or come back later\n", headers={"Retry-After": "30"})
    resp = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-cache, no-store, private", "Pragma": "no-cache",
    })
    await resp.prepare(request)
    service.add_viewer("mjpeg", +1)
    transport = request.transport  # kept: the request forgets it once the connection is lost
    service.mjpeg_transports.add(transport)
    shown = service.pipeline.shown
    seq = 0
    try:
        while True:
            frame = await shown.next(after=seq)
            seq = frame.seq
            if not frame.encoded:  # the first viewer's first frame: encoded off the event loop
                await asyncio.to_thread(shown.jpeg, frame)
            await asyncio.wait_for(resp.write(PARTS.of(shown, frame)), STALL_S)
            await asyncio.sleep(max(1.0 / s.mjpeg_max_fps, service.viewers["mjpeg"] / s.mjpeg_budget_fps))
    except (ConnectionError, BusClosed, asyncio.TimeoutError):
        pass  # the viewer left or stalled, or the server is shutting down
    finally:
        service.add_viewer("mjpeg", -1)
        service.mjpeg_transports.discard(transport)
    return resp


def drop_all(transports) -> None:
    """At shutdown: every viewer's connection closed at once, its unsent bytes dropped. A
    multipart stream has no last frame to finish, and a viewer that stopped reading would
    otherwise hold its handler (and the exit) until aiohttp's shutdown timeout."""
    for transport in list(transports):
        if transport is not None:
            transport.abort()
