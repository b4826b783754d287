"""The shared request queue and its policy: who gets to decide what is dreamed next.

Pure logic with an injected clock, so every rule is unit-tested without a network:
- a request plays for `hold_s`, then the next queued one follows; an idle queue wanders
  through the playlist;
- a duplicate of a queued request adds a vote instead of a second entry, and more votes
  move it up (ties keep arrival order);
- every request, accepted or not, first spends a token from its sender's budget
  (`attempt_burst`, refilled at `attempts_per_s`): a flood is refused for the cost of a dict
  lookup, before any matching; accepted ones also obey `cooldown_s` and at most `burst` per
  `window_s`; the queue holds at most `max_queue` entries; idle senders are forgotten;
- "democracy" mode: requests are votes for the next slot; when the hold ends the most
  voted wins and the ballot is cleared.
Thread-safe: the web/websocket side submits, the dream thread reads `current()`.

With a store (`stream/queue/store.py`), every change is saved as it happens and a new queue picks
up the saved one: what plays and since when (on the wall clock, so the time a restart took
counts), the queue with its votes, the playlist's place and the next id. Rate-limit windows
are not kept: a restart forgets who asked how often.

Shared (`stream/queue/shared.py`, `[queue] url`): the state lives in Redis instead of in this
process, and each call runs as one transaction on it: the newest state (and the sender's
budget) read, these rules applied, the changes written unless another process changed the
state meanwhile, in which case the call runs again on the new state. So several processes
keep one queue: votes add up, a sender is one sender wherever they ask, a hold ends once.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from dreamer.classes import ClassWeight, RequestError, Target, parse, twins

from ..core.token_bucket import TokenBucket


class SavedStateError(ValueError):
    """A store's saved queue that this code cannot read."""


@dataclass
class QueuePolicy:
    # how long a request plays: named blind, the object reads 15-20 s into a hold and is mostly
    # gone by 30 s, magnified past the frame by the zoom (docs/quality.md, "Blind naming")
    hold_s: float = 20.0
    cooldown_s: float = 3.0  # per user, between two requests
    burst: int = 5  # per user, requests per window_s
    window_s: float = 60.0
    max_queue: int = 20
    max_user_len: int = 40
    mode: str = "queue"  # "queue" or "democracy"
    attempts_per_s: float = 1.0  # any request or lookup, accepted or not, refills the budget this fast
    attempt_burst: int = 10  # ... up to this many at once


@dataclass
class Entry:
    id: str
    target: Target
    users: list[str]
    votes: int
    arrived: float

    def to_json(self, wall_offset: float) -> dict:
        """For the store: `arrived` on the wall clock (monotonic + wall_offset)."""
        t = self.target
        return {"id": self.id, "label": t.label, "classes": [[c.index, c.name, c.weight] for c in t.classes],
                "parts": [[label, list(indices)] for label, indices in t.parts],
                "users": list(self.users), "votes": self.votes, "arrived": self.arrived + wall_offset}

    @classmethod
    def from_json(cls, d: dict, wall_offset: float, now: float) -> "Entry":
        """A kept entry; `now` (monotonic) caps its arrival: a wall clock set back between runs
        must not put it in the future."""
        target = Target(str(d["label"]), tuple(ClassWeight(int(i), str(n), float(w)) for i, n, w in d["classes"]),
                        tuple((str(label), tuple(int(i) for i in indices)) for label, indices in d["parts"]))
        if not target.classes or not all(0 <= c.index < 1000 and 0 < c.weight <= 1 for c in target.classes):
            raise ValueError(f"entry {d['id']!r}: classes out of range")
        if {i for _, members in target.parts for i in members} != {c.index for c in target.classes}:
            raise ValueError(f"entry {d['id']!r}: parts that are not its classes")  # what the dream scores
        return cls(str(d["id"]), target, [str(u) for u in d["users"]], int(d["votes"]),
                   min(now, _finite(d["arrived"]) - wall_offset))


@dataclass
class Ack:
    id: str
    target: Target
    position: int  # 0 = playing now
    also: list[str] = field(default_factory=list)  # other readings to offer ("missile (projectile)")

    def to_json(self) -> dict:
        return {"type": "ack", "id": self.id, "target": self.target.to_json(), "position": self.position,
                **({"also": self.also} if self.also else {})}


@dataclass
class _User:
    budget: TokenBucket  # attempts; its `last` is the sender's last attempt
    recent: deque = field(default_factory=deque)  # times of accepted requests within window_s

    def to_json(self, wall_offset: float) -> dict:
        """For a shared queue: the budget and the window on the wall clock."""
        b = self.budget
        return {"tokens": b.tokens, "last": b.last + wall_offset, "recent": [t + wall_offset for t in self.recent]}

    @classmethod
    def from_json(cls, d: dict, policy: "QueuePolicy", wall_offset: float, now: float) -> "_User":
        budget = TokenBucket(policy.attempts_per_s, policy.attempt_burst, min(now, _finite(d["last"]) - wall_offset))
        budget.tokens = min(float(policy.attempt_burst), _finite(d["tokens"]))
        return cls(budget, deque(min(now, _finite(t) - wall_offset) for t in d["recent"]))


PRUNE_EVERY = 256  # attempts between sweeps of idle senders


def _finite(value) -> float:
    if not math.isfinite(v := float(value)):
        raise ValueError(f"{value!r} is not a time")
    return v


class _Kept:
    """A store that holds one kept state and writes nothing: what `check_saved` restores from."""

    def __init__(self, saved: dict):
        self.saved = saved

    def load_queue(self) -> dict:
        return self.saved

    def save_queue(self, state: dict) -> None:
        pass


def _key(target: Target) -> tuple:
    return tuple(sorted((c.index, round(c.weight, 6)) for c in target.classes))


class RequestQueue:
    def __init__(self, policy: QueuePolicy, playlist: list[str], clock=time.monotonic, first: str | None = None,
                 store=None, wall=time.time, shared=None):
        """`first`: what plays before anything else (then the playlist); default the playlist's first.
        `store`: where the state is kept (a `stream.queue.store.SqliteStore`); a saved state is picked
        up instead of starting with `first`. `wall`: the wall clock, for times kept across runs.
        `shared`: a `stream.queue.shared.RedisShared` the state lives in, shared with other
        processes (then no `store`); its state is picked up, or started as above."""
        self.policy, self.clock, self.store, self.wall, self.shared = policy, clock, store, wall, shared
        self.playlist = [parse(p) for p in playlist] or [parse("volcano")]
        self._playlist_at = 0  # the playlist's next item
        self._next_id = 1  # ids are r1, r2, ... and playlist-N from one counter, kept across runs
        self._lock = threading.Lock()
        self._queue: list[Entry] = []
        self._users: dict[str, _User] = {}
        self._attempts = 0
        self.version = 0  # bumped on every change of current target or queue
        self._changed = False  # shared: this call changed the state (it is written)
        saved = store.load_queue() if store is not None else None
        if saved is not None:
            self._restore(saved)
        else:
            start = parse(first) if first else self._from_playlist()
            self._current = Entry("playlist-0", start, [], 0, clock())
            self._started = clock()
            self._save()
        if shared is not None:  # the shared state wins; this one is written only where there is none
            shared.start(self)

    # -- requests -------------------------------------------------------------------------
    def submit(self, text, user: str, key: str | None = None) -> Ack:
        """Accept a request or raise RequestError(code, message, suggestions).

        `user` is the name shown and counted as a vote; `key` is who is rate-limited (the IP
        for web clients, so a new name is not a new allowance); it defaults to `user`.
        """
        user = (user or "anonymous")[: self.policy.max_user_len]
        key = key or user

        def spend() -> None:  # rate first: a flood costs a dict lookup, not a fuzzy match
            now = self.clock()
            self._spend(key, now)
            self._check_rate(key, now)

        def add() -> Ack:
            now = self.clock()
            self._check_rate(key, now)  # again: another submit may have landed meanwhile
            entry = self._merge(target, user)
            if entry is None:
                if len(self._queue) >= self.policy.max_queue:
                    raise RequestError("queue_full", f"the queue is full ({self.policy.max_queue}); try again soon")
                entry = Entry(f"r{self._new_id()}", target, [user], 1, now)
                self._queue.append(entry)
            self._user(key, now).recent.append(now)
            self._sort()
            self.version += 1
            if self._current.id.startswith("playlist") and self.policy.mode == "queue":
                self._advance(now)  # nobody asked before: the first request plays at once
            else:
                self._save()
            return Ack(entry.id, entry.target, self._position(entry), also)

        self._atomically(spend, key)
        target = parse(text)  # unknown_class / too_long / bad_request
        also = twins(text)  # "missile" plays as missile (rocket): the ack offers missile (projectile)
        return self._atomically(add, key)

    def attempt(self, key: str) -> None:
        """Spend one token of `key`'s budget (a class lookup, say); RequestError when empty."""
        self._atomically(lambda: self._spend(key, self.clock()), key)

    def _atomically(self, change, sender: str | None = None):
        """`change()` under the lock; with a shared state, as one transaction on it (with
        `sender`'s budget), run again if another process changed it meanwhile."""
        with self._lock:
            if self.shared is None:
                return change()
            return self.shared.run(self, change, sender)

    def _user(self, key: str, now: float) -> _User:
        u = self._users.get(key)
        if u is None:  # new, forgotten, or (shared) expired between two parts of one request
            u = self._users[key] = _User(TokenBucket(self.policy.attempts_per_s, self.policy.attempt_burst, now))
        return u

    def _spend(self, key: str, now: float) -> None:
        wait = self._user(key, now).budget.take(now)
        self._attempts += 1
        if self._attempts % PRUNE_EVERY == 0 and self.shared is None:  # shared: Redis expires them
            self._forget_idle(now)
        if wait:
            raise RequestError("rate_limited", f"slow down: too many requests (wait {wait:.1f} s)")

    def _forget_idle(self, now: float) -> None:
        """Senders with a full budget and nothing in the window are forgotten: the table holds
        the active ones only, however many came by."""
        idle = self.idle_after_s()
        for key in [k for k, u in self._users.items() if now - u.budget.last > idle]:
            del self._users[key]

    def idle_after_s(self) -> float:
        """How long a sender's budget and window matter after their last attempt."""
        p = self.policy
        return max(p.window_s, p.attempt_burst / p.attempts_per_s)

    def user_from_json(self, d: dict, wall_offset: float) -> _User:
        """A shared sender's budget and window; SavedStateError for one this code cannot read."""
        try:
            return _User.from_json(d, self.policy, wall_offset, self.clock())
        except (KeyError, ValueError, TypeError) as e:
            raise SavedStateError(f"a sender: {type(e).__name__}: {e}") from None

    @property
    def senders(self) -> int:
        """How many senders the rate limiter holds now."""
        return len(self._users)

    def _check_rate(self, user: str, now: float) -> None:
        recent = self._user(user, now).recent
        while recent and now - recent[0] > self.policy.window_s:
            recent.popleft()
        if recent and now - recent[-1] < self.policy.cooldown_s:
            wait = self.policy.cooldown_s - (now - recent[-1])
            raise RequestError("rate_limited", f"slow down: one request every {self.policy.cooldown_s:g} s "
                                               f"(wait {wait:.1f} s)")
        if len(recent) >= self.policy.burst:
            wait = self.policy.window_s - (now - recent[0])
            raise RequestError("rate_limited", f"at most {self.policy.burst} requests per "
                                               f"{self.policy.window_s:g} s (wait {wait:.0f} s)")

    def _merge(self, target: Target, user: str) -> Entry | None:
        key = _key(target)
        if _key(self._current.target) == key and not self._current.id.startswith("playlist"):
            return self._current  # asking for what plays now: acknowledged, position 0
        for entry in self._queue:
            if _key(entry.target) == key:
                if user not in entry.users:
                    entry.users.append(user)
                    entry.votes += 1
                return entry
        return None

    def _sort(self) -> None:
        self._queue.sort(key=lambda e: (-e.votes, e.arrived))

    def _position(self, entry: Entry) -> int:
        return 0 if entry is self._current else 1 + self._queue.index(entry)

    # -- time -----------------------------------------------------------------------------
    def current(self) -> Target:
        """What to dream now; advances the queue when the hold has run out."""
        def due() -> Target:
            now = self.clock()
            if now - self._started >= self.policy.hold_s:
                self._advance(now)
            return self._current.target
        try:
            return self._atomically(due)
        except RequestError:  # shared and unreachable: the dream goes on with what it had
            return self._current.target

    def _advance(self, now: float) -> None:
        if self._queue:
            self._current = self._queue.pop(0)
            if self.policy.mode == "democracy":
                self._queue.clear()  # a new ballot for the next slot
        else:
            self._current = Entry(f"playlist-{self._new_id()}", self._from_playlist(), [], 0, now)
        self._started = now
        self.version += 1
        self._save()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _playlist_next(self) -> int:
        """The playlist's next item: the one at its place, or the one after it when that is
        what plays now (`first` is often the playlist's first: one class twice in a row would
        hold an idle stream on it for two holds)."""
        i = self._playlist_at % len(self.playlist)
        playing = getattr(self, "_current", None)
        if playing is not None and len(self.playlist) > 1 and _key(self.playlist[i]) == _key(playing.target):
            i = (i + 1) % len(self.playlist)
        return i

    def _from_playlist(self) -> Target:
        i = self._playlist_next()
        self._playlist_at = i + 1
        return self.playlist[i]

    def skip(self) -> Target:
        """Play the next entry now (screensaver 'next', a moderator's !skip)."""
        def advance() -> Target:
            self._advance(self.clock())
            return self._current.target
        return self._atomically(advance)

    def clear(self) -> int:
        """Empty the queue (a moderator's !clear); what plays goes on. Returns how many went."""
        def empty() -> int:
            n = len(self._queue)
            self._queue.clear()
            self.version += 1
            self._save()
            return n
        return self._atomically(empty)

    # -- keeping ---------------------------------------------------------------------------
    def _save(self) -> None:
        """Hand the whole state to the store (called with the lock held, after each change)."""
        self._changed = True
        if self.store is None:
            return
        self.store.save_queue(self.state(self.wall() - self.clock()))

    def state(self, offset: float) -> dict:
        """The whole state, its times on the wall clock (monotonic + `offset`), as kept."""
        return {"current": self._current.to_json(offset), "since": self._started + offset,
                "queue": [e.to_json(offset) for e in self._queue],
                "playlist_at": self._playlist_at, "next_id": self._next_id}

    def _restore(self, saved: dict, offset: float | None = None) -> None:
        now = self.clock()
        offset = self.wall() - now if offset is None else offset
        try:
            self._current = Entry.from_json(saved["current"], offset, now)
            # a wall clock set back between runs (NTP, a board without a clock battery) would
            # put the start in the future and hold the dream past its time: it starts now then
            self._started = min(now, _finite(saved["since"]) - offset)
            self._queue = [Entry.from_json(e, offset, now) for e in saved["queue"]]
            self._playlist_at = int(saved["playlist_at"])
            self._next_id = int(saved["next_id"])
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise SavedStateError(f"{type(e).__name__}: {e}") from None

    @staticmethod
    def check_saved(saved: dict) -> None:
        """Raise SavedStateError for a kept state a queue could not pick up (the store asks
        before it writes anything to the file)."""
        RequestQueue(QueuePolicy(), ["volcano"], store=_Kept(saved))

    # -- state ----------------------------------------------------------------------------
    def snapshot(self, reread: bool = True) -> dict:
        """The state's queue part: what plays (with its id, who asked, seconds left), the queue,
        what plays next (the queue's first, else the playlist's next) and the hold. Shared and
        `reread`: the newest state first (the last one read while Redis is unreachable)."""
        with self._lock:
            if self.shared is not None and reread:
                self.shared.refresh(self)
            cur = self._current
            upcoming = self._queue[0].target if self._queue else self.playlist[self._playlist_next()]
            return {"target": {**cur.target.to_json(), "id": cur.id, "user": ", ".join(cur.users[:3]) or None,
                               "remaining_s": round(max(0.0, self.policy.hold_s - (self.clock() - self._started)), 1)},
                    "queue": [{**e.target.to_json(), "id": e.id, "votes": e.votes, "user": e.users[0]}
                              for e in self._queue],
                    "next": upcoming.label, "hold_s": self.policy.hold_s}
