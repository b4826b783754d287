"""The dream thread: the one thread that owns the model and the device.

Each loop: ask the request queue what to dream, switch target if it changed (the dreamer
blends), dream one frame, publish it on the FrameBus. It never waits for viewers or the
network. An exception in a frame is logged and the loop goes on after a pause; `/healthz`
reports a stall if frames stop.
"""
from __future__ import annotations

import logging
import time

from dreamer.loop import Dreamer

from .config import Config
from .framebus import FrameBus
from .metrics import Metrics
from .requests import RequestQueue
from .worker import Worker

log = logging.getLogger(__name__)


class DreamEngine(Worker):
    name = "dream-loop"

    def __init__(self, cfg: Config, model, bus: FrameBus, queue: RequestQueue, metrics: Metrics):
        super().__init__()
        self.cfg, self.model, self.bus, self.queue, self.metrics = cfg, model, bus, queue, metrics
        self.fps = 0.0  # exponential moving average of optimized frames per second

    def run(self) -> None:
        dreamer = Dreamer(self.model, self.cfg.dream, seed=self.cfg.seed)
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                target = self.queue.current()
                if target != dreamer.target:
                    log.info("dreaming %s", target.label)
                    dreamer.set_target(target)
                rgb = dreamer.frame()
            except Exception:  # a bad frame must not end the stream: log it, pause, go on
                log.exception("dream frame failed; retrying in 1 s")
                self.metrics.dream_errors.inc()
                self._stop.wait(1.0)
                continue
            self.bus.publish(rgb)
            now = time.monotonic()
            dt, last = now - last, now
            self.fps = 1 / dt if not self.fps else 0.9 * self.fps + 0.1 / dt
            self.metrics.frames.inc()
            self.metrics.steps.inc(self.cfg.dream.steps)
            self.metrics.fps.labels("dream").set(self.fps)
        dreamer.close()
