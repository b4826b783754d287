"""The frame budget and the dream thread's clock, with a network-free stand-in dreamer."""
import numpy as np

from dreamer.classes import parse
from dreamer.loop import DreamSettings
from stream.core.framebus import FrameBus
from stream.queue.requests import QueuePolicy, RequestQueue
from stream.spine.engine import DreamEngine, FrameBudget


def test_budget_fits_steps_into_the_frame_time_within_bounds():
    b = FrameBudget(fps=5.0, min_steps=3, max_steps=24, first_steps=5)
    assert b.steps() == 5 and b.estimate(5) == 0.2  # nothing measured: the configured steps, one frame's time
    b.record(5, 0.5)  # 0.1 s a step: a busy machine
    assert b.step_s == 0.1 and b.steps() == 3  # 2 would fit; never below min_steps
    b.record(3, 0.03)  # 0.01 s a step now: the average follows (0.7 * 0.1 + 0.3 * 0.01)
    assert abs(b.step_s - 0.073) < 1e-12 and b.steps() == 3
    for _ in range(30):
        b.record(5, 0.05)
    assert b.steps() == 20  # 0.2 s / 0.01 s
    for _ in range(30):
        b.record(5, 0.001)
    assert b.steps() == 24  # a very fast machine: at most max_steps
    assert abs(b.estimate(24) - 24 * b.step_s) < 1e-12


def test_budget_first_guess_is_kept_within_bounds():
    assert FrameBudget(30.0, 4, 32, 2).steps() == 4
    assert FrameBudget(30.0, 4, 32, 99).steps() == 32


class StandIn:
    """A dreamer with no network: it records what it was asked, and its frame says which one it is."""

    def __init__(self):
        self.target, self.asked = None, []

    def set_target(self, target):
        self.target = target

    def frame(self, dt, steps, interrupt=None):
        self.asked.append((dt, steps))
        return np.full((8, 8, 3), len(self.asked) % 256, np.uint8)

    def close(self):
        pass


def test_the_dream_moves_the_picture_on_by_its_moments_and_never_runs_ahead_of_the_clock():
    stand_in, out = StandIn(), FrameBus(encode=False)
    queue = RequestQueue(QueuePolicy(), ["volcano"])
    settings = DreamSettings(fps=50.0, min_steps=1, max_steps=4, steps=2)
    engine = DreamEngine(None, settings, 0, queue, out, output_fps=25.0, make_dreamer=lambda: stand_in)
    assert engine.fps == 25.0  # the dream never aims above the output's rate
    frames = []
    engine.start()
    try:
        seq = 0
        while len(frames) < 12:
            frame = out.wait(seq, timeout=5)
            assert frame is not None
            frames.append(frame)
            seq = frame.seq
    finally:
        engine.stop()
    assert stand_in.target == parse("volcano")
    # frames done early (the stand-in is instant) wait for the moment they stand for, and
    # moments are a frame's time apart at least: never faster than the output shows
    assert all(f.time >= f.moment for f in frames)
    assert all(b.moment - a.moment >= 1 / 25 - 1e-9 for a, b in zip(frames, frames[1:]))
    # each frame was moved on by exactly the time between its moment and the last one's
    dts = [dt for dt, _ in stand_in.asked]
    assert dts[0] == 0.0
    for prev, f, dt in zip(frames, frames[1:], dts[1:]):
        assert abs((f.moment - prev.moment) - dt) < 1e-9
    assert all(steps == 4 for _, steps in stand_in.asked[2:])  # time to spare: the most steps allowed
    assert engine.steps == sum(steps for _, steps in stand_in.asked[: engine.frames])
