"""The dream thread: the one thread that owns the model and the device.

Each loop: ask the request queue what to dream, switch target if it changed (the dreamer
blends), dream one frame, publish it on the dreamed bus. It never waits for viewers or the
network. A frame that fails is logged and the loop goes on after a pause, keeping the
picture; anything worse ends the job and its `Worker` restarts it. Stopping interrupts a
frame between two gradient steps, so shutdown never waits for a whole large frame.

Time and budget. Every dreamed frame carries the moment its picture stands for. Before a
frame the engine asks the `FrameBudget` how many steps fit into one frame's time (1 / fps)
and when the frame will be done, and has the dreamer move the picture on by the time from
the last frame's moment to that one: the motion follows the clock, whatever the rate, so the
stream looks the same on any machine and under any load. A frame done early waits for its
moment (the dream never runs ahead of the clock, so never publishes faster than the output
shows); one done late is shown moved on to the present by the presenter, which works from
the same moments, so the picture's geometry never jumps.

With a live source, each frame dreams on the newest source frame (`dreamer.live`: the last
residual carried onto it along the flow) and is published with the source frame it grew on,
which the presenter carries on to every newer source frame.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from dreamer.live import LiveDream, LiveSettings, motionless
from dreamer.loop import MAX_DT_S, Dreamer, DreamSettings
from dreamer.photo import cover

from ..core.framebus import FrameBus
from ..core.gate import ALWAYS
from ..core.worker import RateMeter, Repeats, Worker, again
from ..queue.requests import RequestQueue

log = logging.getLogger(__name__)


class FrameBudget:
    """How many gradient steps the next frame takes: as many as fit into `1 / fps` seconds at
    the measured cost of a step (the frame's fixed costs spread over its steps), never fewer
    than `min_steps` nor more than `max_steps`. Arithmetic only: the caller times the frames."""

    def __init__(self, fps: float, min_steps: int, max_steps: int, first_steps: int):
        self.frame_s = 1.0 / fps
        self.min_steps, self.max_steps = min_steps, max(min_steps, max_steps)
        self.first = self.clamp(first_steps)
        self.step_s: float | None = None  # moving average of seconds per step

    def clamp(self, steps: int) -> int:
        return max(self.min_steps, min(self.max_steps, steps))

    def steps(self) -> int:
        if self.step_s is None:  # nothing measured yet: the configured steps
            return self.first
        return self.clamp(round(self.frame_s / self.step_s))

    def estimate(self, steps: int) -> float:
        """Seconds a frame of `steps` steps should take (unknown yet: one frame's time)."""
        return self.frame_s if self.step_s is None else steps * self.step_s

    def record(self, steps: int, seconds: float) -> None:
        per_step = seconds / max(1, steps)
        # a moving average: a busy spell (an encoder burst, a viewer crowd) shows within a frame or two
        self.step_s = per_step if self.step_s is None else 0.7 * self.step_s + 0.3 * per_step


class DreamEngine(Worker):
    name = "dream-loop"

    def __init__(self, model, settings: DreamSettings, seed: int | None, queue: RequestQueue, out: FrameBus,
                 output_fps: float, make_dreamer: Callable[[], Dreamer] | None = None,
                 source: FrameBus | None = None, live: LiveSettings | None = None):
        """`output_fps`: the presenter's rate, which the dream never exceeds. `make_dreamer`: a
        stand-in for the real dreamer (the bench's network-free one); default the model's.
        `source`: the live source's bus, dreamed on with `live`; None: the dream's own last frame."""
        super().__init__()
        self.model, self.settings, self.seed, self.queue, self.out = model, settings, seed, queue, out
        self.source = source
        self.fps = min(settings.fps, output_fps) if settings.fps else output_fps  # the frame budget's rate
        if make_dreamer is None and source is not None:
            make_dreamer = lambda: LiveDream(Dreamer(self.model, motionless(settings), seed=seed),  # noqa: E731
                                             live or LiveSettings())
        self.make_dreamer = make_dreamer or (lambda: Dreamer(self.model, self.settings, seed=self.seed))
        self.meter = RateMeter()
        self.frames = 0  # dreamed frames published
        self.steps = 0  # gradient steps in them
        self.last_steps = 0  # steps the newest frame took
        self.frame_ms = 0.0  # moving average of the time a frame's dreaming takes
        self.frame_errors = 0
        self._dreamer = None  # the running job's, for its figures
        self.failing = Repeats()  # frames failing in a row: one log line per event, not per frame
        self.gate = ALWAYS  # a dreamer beside others on one stream: dreams while it holds the lease

    @property
    def rate(self) -> float:
        """Measured dreamed frames per second."""
        return self.meter.rate

    @property
    def carry_ms(self) -> float | None:
        """With a live source: the ms a dreamed frame spends carrying the residual along the flow."""
        return getattr(self._dreamer, "carry_ms", None)

    def job(self) -> None:
        s = self.settings
        dreamer = self._dreamer = self.make_dreamer()
        budget = FrameBudget(self.fps, s.min_steps, s.max_steps, s.steps)
        moment: float | None = None  # the moment the picture so far stands for
        takeovers, warm = 0, False
        try:
            while not self.stopping:
                if not self.gate.held():  # standing by: warm, then wait for the lease
                    if not warm and self.source is None:  # the first step's one-off costs, paid now
                        dreamer.set_target(self.queue.current())
                        dreamer.frame(0.0, 1)
                    warm = True
                    self.gate.wait_held(0.5)
                    continue
                if self.gate.takeovers != takeovers:  # taken over: on from the picture the stream showed last
                    takeovers, picture = self.gate.takeovers, self.gate.last_picture()
                    if picture is not None and self.source is None:
                        dreamer.restart_from(cover(picture, tuple(s.size)))
                        moment = None
                        log.info("going on from the stream's last frame")
                target = self.queue.current()
                if target != dreamer.target:
                    log.info("dreaming %s", target.label)
                    dreamer.set_target(target)
                src = None
                if self.source is not None:  # dream on the newest source frame (wait for the first)
                    src = self.source.latest() or self.source.wait(0, timeout=0.5)
                    if src is None:
                        continue
                    source = cover(src.rgb, tuple(s.size))
                steps = budget.steps()
                start = time.monotonic()
                due = start + budget.estimate(steps)  # when this frame should be done...
                if moment is not None:  # ...but never sooner after the last than one frame's time
                    due = max(due, moment + budget.frame_s)
                dt = 0.0 if moment is None else min(MAX_DT_S, max(0.0, due - moment))
                try:
                    if src is None:
                        rgb = dreamer.frame(dt, steps, interrupt=self._stop.is_set)
                    else:
                        rgb = dreamer.frame(source, dt, steps, interrupt=self._stop.is_set)
                except Exception as e:  # a bad frame must not end the stream: log it, pause, go on
                    self.failing.say(log, logging.ERROR, f"dream frame failed ({type(e).__name__}: {e}); "
                                                         "retrying every second", exc_info=e)
                    self.frame_errors += 1
                    self._stop.wait(1.0)
                    continue
                if self.failing.count:
                    log.info("dreaming again%s", again(self.failing.reset()))
                if rgb is None:  # interrupted: stopping
                    continue
                took = time.monotonic() - start
                budget.record(steps, took)
                self.frame_ms = took * 1000 if not self.frames else 0.8 * self.frame_ms + 0.2 * took * 1000
                moment = due
                self._stop.wait(max(0.0, due - time.monotonic()))  # early: wait for its moment
                if src is None:
                    self.out.publish(rgb, moment=due)
                else:
                    self.out.publish(rgb, moment=due, source=source, source_time=src.time)
                self.frames += 1
                self.steps += steps
                self.last_steps = steps
                self.meter.tick()
        finally:
            dreamer.close()
