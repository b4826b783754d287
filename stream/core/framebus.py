"""FrameBus: the latest frame and nothing else; never a growing queue.

The producer (a thread) calls `publish(rgb)`. Readers ask for the newest frame when they
are ready: async readers `await bus.next(after=seq)`, threads call `bus.wait(after=seq)`.
A slow reader simply skips frames. The JPEG of a frame is encoded once, in the producer's
thread at publish time (never on the event loop), and shared by every viewer.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB picture (OpenCV wants BGR)."""
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def decode_jpeg(jpeg: bytes) -> np.ndarray | None:
    """The RGB picture of JPEG bytes; None when they are not one."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class BusClosed(Exception):
    """End of stream: the bus was closed (shutdown)."""


@dataclass
class Frame:
    seq: int
    rgb: np.ndarray  # (H, W, 3) uint8
    time: float  # time.monotonic() at publish
    # the moment (time.monotonic()) the picture stands for: a dreamed frame's place in the
    # stream's motion, which the presenter moves on from; the publish time unless given
    moment: float = 0.0
    # with a live source: the source frame (at the dream's size) this dreamed frame grew on,
    # and when that source frame was read
    source: np.ndarray | None = field(default=None, repr=False)
    source_time: float = 0.0
    _jpeg: bytes | None = field(default=None, repr=False)

    @property
    def encoded(self) -> bool:
        """Whether its JPEG exists (else `FrameBus.jpeg` encodes it: do that off the event loop)."""
        return self._jpeg is not None


class FrameBus:
    def __init__(self, jpeg_quality: int = 85, encode: bool = True):
        """`encode`: JPEG-encode every frame at publish (may be switched while running)."""
        self.jpeg_quality, self.encode = jpeg_quality, encode
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = set()
        self.jpeg_encodes = 0  # for tests and metrics: one per frame, however many viewers

    def publish(self, rgb: np.ndarray, moment: float | None = None, source: np.ndarray | None = None,
                source_time: float = 0.0, jpeg: bytes | None = None) -> int:
        """`jpeg`: the picture's JPEG when it came encoded (a front door's frames from a dreamer)."""
        now = time.monotonic()
        frame = Frame(0, rgb, now, now if moment is None else moment, source, source_time, jpeg)
        if self.encode:
            self.jpeg(frame)  # encode here, in the producer's thread
        with self._cond:
            if self._closed:
                return 0
            frame.seq = (self._frame.seq + 1) if self._frame else 1
            self._frame = frame
            self._cond.notify_all()
        self._wake_async_readers()
        return frame.seq

    def close(self) -> None:
        """Wake every reader with BusClosed; later publishes are ignored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake_async_readers()

    def _wake_async_readers(self) -> None:
        """Each waiting coroutine is woken on its own event loop (we may be in another thread)."""
        with self._cond:
            waiters, self._waiters = self._waiters, set()
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut)

    def latest(self) -> Frame | None:
        with self._cond:
            return self._frame

    def jpeg(self, frame: Frame) -> bytes:
        """JPEG bytes of `frame` (encoded at publish, so readers only read)."""
        if frame._jpeg is None:
            frame._jpeg = encode_jpeg(frame.rgb, self.jpeg_quality)
            self.jpeg_encodes += 1
        return frame._jpeg

    def wait(self, after: int = 0, timeout: float | None = None) -> Frame | None:
        """Block (in a thread) until a frame newer than `after` exists; None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._frame is not None and self._frame.seq > after),
                                timeout)
            return self._frame if self._frame and self._frame.seq > after else None

    async def next(self, after: int = 0) -> Frame:
        """Await a frame newer than `after` (the newest one, skipping any in between)."""
        while True:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            with self._cond:
                if self._closed:
                    raise BusClosed()
                if self._frame is not None and self._frame.seq > after:
                    return self._frame
                self._waiters.add((loop, fut))
            try:
                await fut
            finally:
                with self._cond:
                    self._waiters.discard((loop, fut))


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
