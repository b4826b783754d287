"""Supervision: one backoff rule, one rate meter, and a worker that comes back after a failure."""
import asyncio
import logging
import threading

from stream.core.worker import Backoff, RateMeter, Repeats, Worker, again, supervise


def test_backoff_doubles_to_its_cap_and_resets():
    b = Backoff(first=1.0, cap=5.0)
    assert [b.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next() == 1.0


def test_a_repeated_failure_is_one_line_then_one_at_each_power_of_ten(caplog):
    log = logging.getLogger("test.repeats")
    r = Repeats()
    with caplog.at_level(logging.INFO, logger="test.repeats"):
        for _ in range(120):
            r.say(log, logging.WARNING, "ingest: ConnectionRefusedError")
        r.say(log, logging.WARNING, "ingest: TimeoutError")  # a different failure is a new event
    assert [rec.getMessage() for rec in caplog.records] == [
        "ingest: ConnectionRefusedError", "ingest: ConnectionRefusedError (10 times in a row)",
        "ingest: ConnectionRefusedError (100 times in a row)", "ingest: TimeoutError"]
    assert r.reset() == 121 and r.reset() == 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test.repeats"):
        r.say(log, logging.WARNING, "ingest: ConnectionRefusedError")  # after a recovery: said again
    assert len(caplog.records) == 1
    assert again(0) == "" and again(1) == " (back after 1 failed attempt)" and again(12).endswith("12 failed attempts)")


def test_rate_meter_with_an_injected_clock():
    t = [0.0]
    m = RateMeter(window=4, clock=lambda: t[0])
    assert m.tick() == 0.0  # one event is no rate yet
    t[0] = 0.5
    assert m.tick() == 2.0
    t[0] = 1.5  # 3 events over 1.5 s: two intervals
    assert m.tick() == 2 / 1.5
    for _ in range(4):  # one a second from now on: the last 4 intervals are all that count
        t[0] += 1.0
        m.tick()
    assert m.rate == 1.0


def test_rate_meter_is_not_thrown_by_one_short_interval():
    """A frame right after a catch-up: 25 frames a second must not read as 40-57."""
    t = [0.0]
    m = RateMeter(window=20, clock=lambda: t[0])
    m.tick()
    t[0] += 0.001
    m.tick()
    for _ in range(5):
        t[0] += 0.04
        m.tick()
    assert 25 <= m.rate <= 31  # 6 intervals in 0.201 s


class Flaky(Worker):
    name = "flaky"

    def __init__(self, failures: int):
        super().__init__()
        self.backoff = Backoff(first=0.01, cap=0.01)
        self.failures, self.calls, self.done = failures, 0, threading.Event()

    def job(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("injected")
        self.done.set()
        self._stop.wait()  # healthy: run until stopped


def test_a_failing_job_is_logged_and_restarted(caplog):
    w = Flaky(failures=3)
    hook = []
    w.on_restart = lambda: hook.append(1)
    w.start()
    assert w.done.wait(5)
    assert w.state == "running" and w.restarts == 3 and len(hook) == 3
    w.stop()
    assert w.state == "stopped" and w.calls == 4
    # one event: the first failure in full, its two repeats only at debug level
    assert caplog.text.count("flaky failed: RuntimeError: injected") == 1 and "Traceback" in caplog.text


def test_supervise_restarts_an_async_session_and_logs_expected_failures_in_one_line(caplog):
    calls = []

    async def session(backoff):
        calls.append(backoff.delay)
        if len(calls) == 1:
            raise OSError("connection refused")
        if len(calls) == 2:
            raise ValueError("a bug")
        backoff.reset()
        await asyncio.sleep(10)

    async def run():
        task = asyncio.create_task(supervise("chat", session, Backoff(0.01, 0.02), (OSError,)))
        for _ in range(200):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert len(calls) == 3 and calls[1] == 0.02  # doubled after the first failure
    assert "chat: OSError: connection refused" in caplog.text
    assert "chat failed" in caplog.text and "ValueError: a bug" in caplog.text  # the unexpected one, in full
