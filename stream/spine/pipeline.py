"""The frame pipeline, built once and used by the service, the screensaver and the bench:

    [source reader -> `source` bus ->] request queue -> dream engine -> `dreamed` bus -> presenter -> `shown` bus

The engine (one thread, owns the model) publishes each optimized frame on `dreamed`; the
presenter (its own thread) turns them into a steady `output_fps`, zooming between dreamed
frames and cross-fading, and publishes on `shown`, where every sink reads: MJPEG, /frame.jpg,
the RTMP encoder, the screensaver window. Both threads run supervised (`stream.core.worker`):
one that fails is restarted, and `health()` says so meanwhile, from the age of the newest
frame on each bus. With a live source (`stream.inputs.source`), its reader is one more supervised
worker in front: the engine dreams on its newest frame, the presenter shows every one of them
with the dream carried on; a source that stops leaves the stream running on its last frame
while health reports it.
"""
from __future__ import annotations

import time

from dreamer.settings import DreamSettings, LiveSettings

from ..core.framebus import FrameBus
from ..inputs.source import SourceReader
from ..queue.requests import RequestQueue
from .engine import DreamEngine
from .health import DREAM_STALL_S, SHOWN_STALL_S, SOURCE_STALL_S, Health, bus_age
from .presenter import Presenter


class Pipeline:
    dreams = True  # this process dreams (a front door's RemotePipeline does not)

    def __init__(self, model, dream: DreamSettings, seed: int | None, queue: RequestQueue,
                 output_fps: float, jpeg_quality: int | None = None, output_size: tuple[int, int] | None = None,
                 make_dreamer=None, source: SourceReader | None = None, live: LiveSettings | None = None):
        """`jpeg_quality`: encode each shown frame once, for web viewers; None: no JPEG.
        `output_size`: the shown frames' (width, height); None: the dream's own.
        `make_dreamer`: a stand-in for the model's dreamer (the bench's network-free one).
        `source`: a live source's reader (publishing at the output size), dreamed on with `live`."""
        self.queue, self.source = queue, source
        self.dreamed = FrameBus(encode=False)
        self.shown = FrameBus(jpeg_quality or 85, encode=jpeg_quality is not None)
        source_bus = source.out if source is not None else None
        self.engine = DreamEngine(model, dream, seed, queue, self.dreamed, output_fps, make_dreamer, source_bus, live)
        self.presenter = Presenter(self.dreamed, self.shown, output_fps, dream,
                                   size=None if output_size in (None, tuple(dream.size)) else output_size,
                                   source=source_bus, live=live)

    @property
    def workers(self) -> list:
        return ([self.source] if self.source is not None else []) + [self.engine, self.presenter]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def stop(self) -> None:
        """Blocking (joins threads): run it off the event loop. Ends every reader of the buses."""
        for bus in self.buses:
            bus.close()
        for w in self.workers:
            w.stop()

    @property
    def buses(self) -> list[FrameBus]:
        return ([self.source.out] if self.source is not None else []) + [self.dreamed, self.shown]

    def source_health(self, now: float | None = None) -> dict | None:
        """The source's own account, with the verdict "ok": ended, waiting for a WHIP publisher
        (the stream dreams on its last picture), or a frame within SOURCE_STALL_S. None without
        a source. /healthz, the state and the page all use this one verdict."""
        if self.source is None:
            return None
        source = self.source.health(now)
        age = source["frame_age_s"]
        source["ok"] = source["state"] in ("ended", "waiting") or (age is not None and age < SOURCE_STALL_S)
        return source

    def health(self, now: float | None = None) -> Health:
        now = time.monotonic() if now is None else now
        dreamed, shown = bus_age(self.dreamed, now), bus_age(self.shown, now)
        flowing = (dreamed is not None and dreamed < DREAM_STALL_S and shown is not None and shown < SHOWN_STALL_S)
        source = self.source_health(now)
        ok = flowing and (source is None or source["ok"])
        return Health(ok, dreamed, shown, {w.name: w.state for w in self.workers}, flowing, source)
