"""A WHIP publisher (OBS's "WHIP" service) as the live source: `--source whip`.

The publisher's peer lives on the event loop (stream/front/whip.py); it hands each decoded
frame to `WhipReader.hand`, which keeps only the newest. The reader's thread scales it
straight to the output size in FFmpeg (a 1080p frame is never converted whole), crops it to
the output's aspect and publishes it on the source bus, as `SourceReader` does a camera's.

With no publisher (before the first, or after one left) the stream goes on from the last
picture it had, published again `fps` times a second so the dream keeps flowing on it; before
the first publisher that picture is a mid-grey with faint smooth blotches, the dream's own
start. The next publisher is taken as soon as it connects.
"""
from __future__ import annotations

import logging
import math
import threading
import time

import cv2
import numpy as np

from dreamer.photo import cover

from ..core.framebus import FrameBus
from ..core.worker import RateMeter, Worker
from .source import SourceSpec

log = logging.getLogger(__name__)

QUIET_S = 0.5  # no frame from the publisher for this long: the last picture is shown again


def waiting_picture(size: tuple[int, int]) -> np.ndarray:
    """Mid-grey with faint, smooth blotches (as dreamer.loop starts a dream), at `size` (w, h)."""
    w, h = size
    rng = np.random.default_rng(0)
    blotches = rng.normal(0.5, 0.1, (9, 16, 3)).astype(np.float32)
    smooth = cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth * 255, 0, 255).astype(np.uint8)


class WhipReader(Worker):
    """The WHIP source's reader: the newest handed frame, at the output size, on `out`."""

    name = "source"

    def __init__(self, out: FrameBus, size: tuple[int, int], fps: float = 30.0):
        super().__init__()
        self.spec, self.out, self.size = SourceSpec("whip", "whip"), out, size
        # the source's rate to the presenter (serve's output rate is at least this) and the rate
        # the last picture is shown again at; a publisher's own is measured (health's "fps")
        self.fps = fps
        self.meter = RateMeter(window=20)
        self.input_size = (0, 0)
        self.frames = 0  # from publishers
        self.publisher: str | None = None  # the live publisher's address, None while waiting
        self._handed = None  # the newest decoded frame (av.VideoFrame) not yet published
        self.received_at: float | None = None  # the last publisher frame, on the monotonic clock
        self.connected_at = 0.0  # when the live publisher connected (monotonic)
        self._new = threading.Condition()
        self.last = waiting_picture(size)

    # -- from the event loop ---------------------------------------------------------------
    def hand(self, frame) -> None:
        """A publisher's decoded frame; an older one not yet taken is dropped (newest only)."""
        with self._new:
            self._handed = frame
            self._new.notify()

    def connected(self, who: str) -> None:
        self.publisher, self.connected_at = who, time.monotonic()
        log.info("whip: a publisher is live")

    def left(self, why: str) -> None:
        if self.publisher is not None:
            log.info("whip: the publisher left (%s); going on with the last picture", why)
        self.publisher, self.meter = None, RateMeter(window=20)

    # -- the reader's thread ---------------------------------------------------------------
    def job(self) -> None:
        self.out.publish(self.last)
        again = time.monotonic()
        while not self.stopping:
            with self._new:
                if self._handed is None:
                    self._new.wait(1.0 / self.fps)
                frame, self._handed = self._handed, None
            now = time.monotonic()
            if frame is not None:
                self.last = self._picture(frame)
                self.out.publish(self.last)
                self.frames += 1
                self.meter.tick()
                self.received_at = now
                again = now + QUIET_S
            elif now >= again:  # nobody sending: the last picture again, so the dream flows on
                self.out.publish(self.last)
                again = now + 1.0 / self.fps

    def _picture(self, frame) -> np.ndarray:
        """The frame scaled in FFmpeg to just cover the output, then cropped to its aspect."""
        w, h = self.size
        self.input_size = (frame.width, frame.height)
        scale = max(w / frame.width, h / frame.height)
        sw, sh = max(w, math.ceil(frame.width * scale)), max(h, math.ceil(frame.height * scale))
        return cover(frame.to_ndarray(width=sw, height=sh, format="rgb24", interpolation="AREA"), self.size)

    def health(self, now: float | None = None) -> dict:
        """As SourceReader's, with "waiting" while no publisher is live (nothing is wrong here:
        the stream dreams on its last picture); the frame's age is the live publisher's (counted
        from when it connected, until its first frame), else that of the last one received."""
        now = time.monotonic() if now is None else now
        live = self.publisher is not None
        heard = self.heard_at() if live else self.received_at
        age = None if heard is None else round(now - heard, 2)
        return {"input": self.spec.shown, "kind": "whip", "state": self.state if live else "waiting",
                "fps": round(self.meter.rate, 2) if live else 0.0, "source_fps": round(float(self.fps), 3),
                "size": list(self.input_size), "frame_age_s": age, "error": None}

    def heard_at(self) -> float:
        """When the live publisher last sent a frame, or connected if it has sent none yet."""
        return max(self.received_at or 0.0, self.connected_at)
