"""Supervised work: every thread and task of a running stream runs under the same rules.

`Worker` is a named thread that runs `job()` again and again: a job that raises is logged
(with its traceback the first time: `Repeats` keeps the log to one line per event),
counted, and restarted after a backoff; a job that returns is restarted too (an encoder
session that ended), unless the worker is stopping. `supervise`
does the same for an asyncio task (the chat reader). One `Backoff` rule for all of them:
1 s doubling to a cap of 5 s, back to 1 s as soon as the work reports it is healthy again
(`backoff.reset()`: the ingest accepted, the chat server welcomed us), so a drop after a
run of short drops still costs seconds, not half a minute. One `RateMeter` measures how
often something happens (dreamed frames, shown frames).
"""
from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from dreamer.runtime import lower_this_thread

log = logging.getLogger(__name__)


class Repeats:
    """One log line per event, not per attempt: a failure that repeats unchanged (an ingest
    that stays down, a chat server that refuses us, a frame that keeps failing) is said in
    full the first time, then in one line at the 10th, 100th, 1000th... time in a row, and
    only at debug level in between. `reset()` (it works again) returns how many there were,
    for the line that says so."""

    def __init__(self) -> None:
        self.count, self._last = 0, None

    def say(self, logger: logging.Logger, level: int, what: str, exc_info=None) -> None:
        self.count += 1
        if what != self._last:
            self._last = what
            logger.log(level, "%s", what, exc_info=exc_info)
        elif math.log10(self.count).is_integer():
            logger.log(level, "%s (%d times in a row)", what, self.count)
        else:
            logger.debug("%s (%d times in a row)", what, self.count)

    def reset(self) -> int:
        count, self.count, self._last = self.count, 0, None
        return count


class Backoff:
    """Wait 1 s, then 2, 4, ... up to `cap`; `reset()` when things work again (it returns how
    many failures in a row it ends). `repeats` says each failure (see Repeats)."""

    def __init__(self, first: float = 1.0, cap: float = 5.0):
        self.first, self.cap = first, cap
        self.delay = first
        self.repeats = Repeats()

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.cap, self.delay * 2)
        return delay

    def reset(self) -> int:
        self.delay = self.first
        return self.repeats.reset()


def again(failures: int) -> str:
    """' (back after 12 failed attempts)' for the line that says something works again."""
    return f" (back after {failures} failed attempt{'s' * (failures != 1)})" if failures else ""


class RateMeter:
    """Events per second over the last `window` events: their count over the time they span,
    exact from the second event on. (A moving average started from the first interval, and
    one short interval, a frame right after a presenter caught up, made the page read 40-57
    frames/s at connect for a 25 frames/s stream.)"""

    def __init__(self, window: int = 10, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._times: deque[float] = deque(maxlen=window + 1)

    @property
    def rate(self) -> float:
        t = self._times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def tick(self) -> float:
        self._times.append(self.clock())
        return self.rate


class Worker:
    """A named daemon thread running `job()` under log + backoff + restart."""

    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=self.name, daemon=True)
        self.backoff = Backoff()
        self.restarts = 0
        self.state = "idle"  # idle | running | restarting | stopped
        self.on_restart: Callable[[], None] = lambda: None  # metrics hook
        self.nice = 0  # > 0: run this thread (and the threads it starts) at a lower priority

    def start(self) -> None:
        self._thread.start()

    def stop_soon(self) -> None:
        """Ask the job to end (between two steps, for the dream); returns at once."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Blocking: call from a worker thread (asyncio.to_thread), never on the event loop."""
        self.stop_soon()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def job(self) -> None:
        raise NotImplementedError

    def _supervise(self) -> None:
        if self.nice:
            lower_this_thread(self.nice)
        while not self._stop.is_set():
            self.state = "running"
            try:
                self.job()
            except Exception as e:  # any failure: say why (in full the first time), then start again
                self.backoff.repeats.say(log, logging.ERROR, f"{self.name} failed: {type(e).__name__}: {e}",
                                         exc_info=e)
            if self._stop.is_set():
                break
            self.state = "restarting"
            self.restarts += 1
            self.on_restart()
            delay = self.backoff.next()
            log.debug("%s: restarting in %.0f s", self.name, delay)  # a job that ended has said why
            self._stop.wait(delay)
        self.state = "stopped"


async def supervise(name: str, session: Callable[[Backoff], Awaitable[None]], backoff: Backoff | None = None,
                    failure: tuple[type[BaseException], ...] = ()) -> None:
    """Run `session(backoff)` forever: log how it ended, wait, run it again. Cancel to stop.

    Expected failures (`failure`, e.g. a dropped connection) are logged in one line; anything
    else with its traceback, and the work still restarts.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            await session(backoff)
            backoff.repeats.say(log, logging.WARNING, f"{name}: session ended")
        except asyncio.CancelledError:
            raise
        except failure as e:
            backoff.repeats.say(log, logging.WARNING, f"{name}: {type(e).__name__}: {e}")
        except Exception as e:
            backoff.repeats.say(log, logging.ERROR, f"{name} failed: {type(e).__name__}: {e}", exc_info=e)
        delay = backoff.next()
        log.debug("%s: retrying in %.0f s", name, delay)
        await asyncio.sleep(delay)
