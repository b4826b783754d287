"""One active dreamer per stream, the others standing by (`serve --role dreamer`).

    PREFIX + "lease"       "GEN HOST:PID" of the active dreamer; gone TTL_MS after its last renewal
    PREFIX + "lease:gen"   the generation: one more at each takeover, never reused

Every dreamer on a stream asks for the lease when it is free, and the one that gets it renews
it every RENEW_S. The others wait with the model loaded and warm (standby) and ask again every
LOOK_S. The active one killed (kill -9, its machine gone): its lease runs out within TTL_MS, a
standby takes it, and goes on from the last frame the stream showed (each dreamer keeps the
newest one from the frames channel) with the same request and its time left (the queue is in
Redis). A clean stop gives the lease back at once.

Fencing: a paused or cut-off active that comes back must do no harm. Its frames and figures
reach the front doors only through `publish` and `set_figures`, scripts that check in Redis
that the lease is still this process's generation. Its dream, presenter and RTMP push ask
`held()`: the lease renewed less than TTL_MS - MARGIN_S ago by this machine's boot clock,
which runs on through SIGSTOP and a suspend, so a process that was paused past its lease
stops pushing before it has even asked Redis, and before a standby can have taken over.
Redis that lost the generation (no appendonly file, a flush) lets nobody take the lease for
one TTL, so a holder that has not noticed yet has stopped by then.

A dream that is stuck (no dreamed frame for DREAM_STALL_S) while this process holds the lease
gives it back: a standby that dreams beats an active one that does not.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import redis

from ..core.framebus import decode_jpeg
from ..core.worker import Repeats, Worker
from ..spine.health import DREAM_STALL_S
from .publish import FRAMES

log = logging.getLogger(__name__)

LEASE, GENERATION = "lease", "lease:gen"  # the keys' names, after the stream's prefix
TTL_MS = 2000  # a dead active's lease is free this long after its last renewal
RENEW_S = 0.5  # the active renews this often: four chances in a TTL
LOOK_S = 0.1  # a standby asks for the lease this often: a takeover waits TTL_MS and at most this
MARGIN_S = 0.25  # held() ends this long before the lease can end in Redis
RETRY_S = 0.25  # after a failure to reach Redis

NOBODY = "nobody (Redis lost the lease: one TTL for any holder to notice)"


def now() -> float:
    """The clock held() is reckoned on: it runs on through a pause and a suspend."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


# Each script runs atomically in Redis: KEYS[1] is the lease, KEYS[2] its generation.
TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], 0)
  redis.call('SET', KEYS[1], '0 ' .. ARGV[3], 'PX', ARGV[2])
  return 0
end
local gen = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], gen .. ' ' .. ARGV[1], 'PX', ARGV[2])
return gen
"""
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
GIVE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""
PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('PUBLISH', KEYS[2], ARGV[2])
"""
SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""


class Lease(Worker):
    name = "lease"

    def __init__(self, client, prefix: str, holder: str, dreaming: Callable[[], bool] = lambda: True):
        """`client`: a redis.Redis; `holder`: this process as the log and /healthz name it (host:pid);
        `dreaming()`: a dreamed frame within DREAM_STALL_S (the pipeline's health)."""
        super().__init__()
        self.client, self.prefix, self.holder, self.dreaming = client, prefix, holder, dreaming
        self.keys = [prefix + LEASE, prefix + GENERATION]
        self.channel = prefix + FRAMES
        self.value: str | None = None  # "GEN HOST:PID" while this process holds (or last held) the lease
        self.generation = 0  # the lease this process holds or held last; 0: never held
        self.active: str | None = None  # who holds it as last seen, for /healthz and the log
        self.takeovers = 0  # leases this process has taken
        self.fenced = 0  # publishes Redis refused: this process had lost the lease without knowing yet
        self.newest: bytes | None = None  # the newest frame the stream showed (its JPEG)
        self._held_until = 0.0
        self._held_since = 0.0
        self._not_before = 0.0  # after giving a stuck dream's lease back: the standbys' turn first
        self._held = threading.Event()
        self._failing = Repeats()
        self._take, self._renew, self._give_back, self._publish, self._set = (
            client.register_script(s) for s in (TAKE, RENEW, GIVE_BACK, PUBLISH, SET))

    # -- what the workers ask -----------------------------------------------------------------
    def held(self) -> bool:
        return self.value is not None and now() < self._held_until

    def wait_held(self, timeout: float) -> bool:
        deadline = now() + timeout
        while not self.held():
            left = deadline - now()
            if left <= 0 or self.stopping:
                return False
            if self._held.is_set():  # run out on the clock, and the lease thread has not said so yet
                self._stop.wait(min(left, 0.05))
            else:
                self._held.wait(left)
        return True

    def last_picture(self) -> np.ndarray | None:
        jpeg = self.newest
        return None if jpeg is None else decode_jpeg(jpeg)

    def publish(self, jpeg: bytes) -> bool:
        """A shown frame to the front doors, if the lease is still this process's in Redis."""
        return self._fenced(self._publish, [self.keys[0], self.channel], [jpeg])

    def set_figures(self, key: str, value: str, ttl_ms: int) -> bool:
        return self._fenced(self._set, [self.keys[0], key], [value, ttl_ms])

    def _fenced(self, script, keys: list[str], args: list) -> bool:
        value = self.value  # read once: the lease thread may drop it meanwhile
        if value is None or not self.held():
            return False
        if script(keys=keys, args=[value, *args]) == -1:
            self.fenced += 1
            return False
        return True

    def standing_by(self) -> bool:
        """Another dreamer holds the lease, as Redis said at the last look: this one waits,
        healthy, with nothing to show. Not while Redis cannot be reached or this thread is down."""
        return (not self.held() and self.active not in (None, self.holder, NOBODY) and not self._failing.count
                and self.state == "running")

    def said(self) -> dict:
        """For /healthz: active or standby, who is active, the generation."""
        return {"state": "active" if self.held() else "standby", "active": self.active,
                "generation": self.generation, "takeovers": self.takeovers}

    # -- the lease thread -----------------------------------------------------------------------
    def job(self) -> None:
        """Keep the newest frame the stream showed, and the lease (renewed every RENEW_S, or
        asked for every LOOK_S). Redis lost: looked for again every RETRY_S, never a worker's longer backoff,
        so a short outage does not cost the lease."""
        pubsub, due = None, 0.0
        try:
            while not self.stopping:
                try:
                    if pubsub is None:
                        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                        pubsub.subscribe(self.channel)
                    message = pubsub.get_message(timeout=0.05)
                    while message is not None:
                        if message["type"] == "message":
                            self.newest = message["data"]
                        message = pubsub.get_message(timeout=0.0)
                    if time.monotonic() >= due:
                        self._tick()
                        due = time.monotonic() + (RENEW_S if self.value is not None else LOOK_S)
                    if self._failing.count:
                        log.info("lease: Redis reachable again (%d failed attempts)", self._failing.reset())
                except redis.RedisError as e:
                    self._failing.say(log, logging.WARNING, f"lease: Redis: {type(e).__name__}: {e}")
                    if pubsub is not None:
                        pubsub.close()
                        pubsub = None
                    self._lapse()
                    due = 0.0
                    self._stop.wait(RETRY_S)
        finally:
            if pubsub is not None:
                pubsub.close()

    def _tick(self) -> None:
        asked = now()
        if self.value is not None:  # held, or held until Redis went: still ours if Redis kept it
            if self.held() and asked - self._held_since > DREAM_STALL_S and not self.dreaming():
                log.error("the dream is stuck (no frame for %g s): lease %d given back", DREAM_STALL_S,
                          self.generation)
                self._give_back_now()
                self._not_before = asked + 2 * TTL_MS / 1000
                return
            if self._renew(keys=self.keys[:1], args=[self.value, TTL_MS]):
                self._holds(asked)
                return
            self._lost()
        if self.stopping or asked < self._not_before:  # a clean stop: never a lease nobody would renew
            return
        generation = self._take(keys=self.keys, args=[self.holder, TTL_MS, NOBODY])
        if generation:
            self.value, self.generation, self.active = f"{generation} {self.holder}", int(generation), self.holder
            self.takeovers += 1
            self._held_since = asked
            self._holds(asked)
            log.info("active for %s (lease %d)", self.prefix, self.generation)
            return
        raw = self.client.get(self.keys[0])
        active = raw.decode("utf-8", "replace").partition(" ")[2] if raw else None
        if active != self.active:
            self.active = active
            log.info("standby for %s, active: %s", self.prefix, active or "none yet")

    def _holds(self, asked: float) -> None:
        """Renewed at `asked` (before the call: Redis counts its TTL from a moment after it)."""
        self._held_until = asked + TTL_MS / 1000 - MARGIN_S
        self._held.set()

    def _lapse(self) -> None:
        """Redis unreachable: held() runs out on the clock; the workers stop at once when it has."""
        if not self.held():
            self._held.clear()

    def _lost(self) -> None:
        log.warning("lease %d lost (paused or cut off from Redis past %d ms): standing by",
                    self.generation, TTL_MS)
        self.value = None
        self._held.clear()

    def stop(self, timeout: float = 5.0) -> None:
        """A clean stop: the lease given back, so a standby takes over at its next look (its
        thread is given a moment whatever is left of the caller's time: a renewal after the
        lease went would otherwise take it again)."""
        super().stop(max(timeout, 1.0))
        self._give_back_now()

    def _give_back_now(self) -> None:
        value, self.value = self.value, None
        self._held.clear()
        if value is not None:
            try:
                if self._give_back(keys=self.keys[:1], args=[value]):
                    log.info("lease %d given back", self.generation)
            except redis.RedisError as e:  # it runs out by itself
                log.warning("lease: could not give it back (%s); it ends within %d ms", e, TTL_MS)
