"""The dream thread: the one thread that owns the model and the device.

Each loop: ask the request queue what to dream, switch target if it changed (the dreamer
blends), dream one frame, publish it on the dreamed bus. It never waits for viewers or the
network. A frame that fails is logged and the loop goes on after a pause, keeping the
picture; anything worse ends the job and its `Worker` restarts it. Stopping interrupts a
frame between two gradient steps, so shutdown never waits for a whole large frame.
"""
from __future__ import annotations

import logging

from dreamer.loop import Dreamer, DreamSettings

from .framebus import FrameBus
from .requests import RequestQueue
from .worker import RateMeter, Repeats, Worker, again

log = logging.getLogger(__name__)


class DreamEngine(Worker):
    name = "dream-loop"

    def __init__(self, model, settings: DreamSettings, seed: int | None, queue: RequestQueue, out: FrameBus):
        super().__init__()
        self.model, self.settings, self.seed, self.queue, self.out = model, settings, seed, queue, out
        self.meter = RateMeter()
        self.frames = 0  # dreamed frames published
        self.frame_errors = 0
        self.failing = Repeats()  # frames failing in a row: one log line per event, not per frame

    @property
    def fps(self) -> float:
        return self.meter.rate

    def job(self) -> None:
        dreamer = Dreamer(self.model, self.settings, seed=self.seed)
        try:
            while not self.stopping:
                target = self.queue.current()
                if target != dreamer.target:
                    log.info("dreaming %s", target.label)
                    dreamer.set_target(target)
                try:
                    rgb = dreamer.frame(interrupt=self._stop.is_set)
                except Exception as e:  # a bad frame must not end the stream: log it, pause, go on
                    self.failing.say(log, logging.ERROR, f"dream frame failed ({type(e).__name__}: {e}); "
                                                         "retrying every second", exc_info=e)
                    self.frame_errors += 1
                    self._stop.wait(1.0)
                    continue
                if self.failing.count:
                    log.info("dreaming again%s", again(self.failing.reset()))
                if rgb is not None:
                    self.out.publish(rgb)
                    self.frames += 1
                    self.meter.tick()
        finally:
            dreamer.close()
