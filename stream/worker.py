"""Supervised work: every thread and task of a running stream runs under the same rules.

`Worker` is a named thread that runs `job()` again and again: a job that raises is logged
with its traceback once, counted, and restarted after a backoff; a job that returns is
restarted too (an encoder session that ended), unless the worker is stopping. `supervise`
does the same for an asyncio task (the chat reader). One `Backoff` rule for all of them:
1 s doubling to a cap of 5 s, back to 1 s as soon as the work reports it is healthy again
(`backoff.reset()`: the ingest accepted, the chat server welcomed us), so a drop after a
run of short drops still costs seconds, not half a minute. One `RateMeter` measures how
often something happens (dreamed frames, shown frames).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from dreamer.runtime import lower_this_thread

log = logging.getLogger(__name__)


class Backoff:
    """Wait 1 s, then 2, 4, ... up to `cap`; `reset()` when things work again."""

    def __init__(self, first: float = 1.0, cap: float = 5.0):
        self.first, self.cap = first, cap
        self.delay = first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.cap, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.first


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
        self._stop.set()
        self._thread.join(timeout)

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
            except Exception:  # any failure: log why, then start the job again
                log.exception("%s failed", self.name)
            if self._stop.is_set():
                break
            self.state = "restarting"
            self.restarts += 1
            self.on_restart()
            delay = self.backoff.next()
            log.info("%s: restarting in %.0f s", self.name, delay)
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
            log.warning("%s: session ended", name)
        except asyncio.CancelledError:
            raise
        except failure as e:
            log.warning("%s: %s: %s", name, type(e).__name__, e)
        except Exception:
            log.exception("%s failed", name)
        delay = backoff.next()
        log.info("%s: retrying in %.0f s", name, delay)
        await asyncio.sleep(delay)
