"""The frame pipeline, built once and used by the service, the screensaver and the bench:

    request queue -> dream engine -> `dreamed` bus -> presenter -> `shown` bus

The engine (one thread, owns the model) publishes each optimized frame on `dreamed`; the
presenter (its own thread) turns them into a steady `output_fps`, zooming between dreamed
frames and cross-fading, and publishes on `shown`, where every sink reads: MJPEG, /frame.jpg,
the RTMP encoder, the screensaver window. Both threads run supervised (`stream.worker`):
one that fails is restarted, and `health()` says so meanwhile, from the age of the newest
frame on each bus.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from dreamer.loop import DreamSettings

from .engine import DreamEngine
from .framebus import FrameBus
from .presenter import Presenter
from .requests import RequestQueue

DREAM_STALL_S = 30.0  # no dreamed frame for this long: the dream is stuck (a frame takes < 2 s)
SHOWN_STALL_S = 5.0  # no shown frame for this long: the presenter is stuck (it shows 25 a second)


@dataclass
class Health:
    ok: bool
    dreamed_age_s: float | None  # None: no frame yet
    shown_age_s: float | None
    workers: dict[str, str]  # name -> running | restarting | ...

    def to_json(self) -> dict:
        return {"ok": self.ok, "frame_age_s": self.dreamed_age_s, "shown_age_s": self.shown_age_s,
                "workers": self.workers}


def _age(bus: FrameBus, now: float) -> float | None:
    frame = bus.latest()
    return None if frame is None else round(now - frame.time, 2)


class Pipeline:
    def __init__(self, model, dream: DreamSettings, seed: int | None, queue: RequestQueue,
                 output_fps: float, jpeg_quality: int | None = None, output_size: tuple[int, int] | None = None,
                 make_dreamer=None):
        """`jpeg_quality`: encode each shown frame once, for web viewers; None: no JPEG.
        `output_size`: the shown frames' (width, height); None: the dream's own.
        `make_dreamer`: a stand-in for the model's dreamer (the bench's network-free one)."""
        self.queue = queue
        self.dreamed = FrameBus(encode=False)
        self.shown = FrameBus(jpeg_quality or 85, encode=jpeg_quality is not None)
        self.engine = DreamEngine(model, dream, seed, queue, self.dreamed, output_fps, make_dreamer)
        self.presenter = Presenter(self.dreamed, self.shown, output_fps, dream,
                                   size=None if output_size in (None, tuple(dream.size)) else output_size)

    @property
    def workers(self) -> list:
        return [self.engine, self.presenter]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def stop(self) -> None:
        """Blocking (joins threads): run it off the event loop. Ends every reader of the buses."""
        self.dreamed.close()
        self.shown.close()
        for w in self.workers:
            w.stop()

    def health(self, now: float | None = None) -> Health:
        now = time.monotonic() if now is None else now
        dreamed, shown = _age(self.dreamed, now), _age(self.shown, now)
        ok = (dreamed is not None and dreamed < DREAM_STALL_S and shown is not None and shown < SHOWN_STALL_S)
        return Health(ok, dreamed, shown, {w.name: w.state for w in self.workers})
