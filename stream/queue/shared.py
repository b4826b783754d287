"""The queue shared through Redis: one queue for several `serve` processes.

`[queue] url = "redis://HOST:PORT/DB"` (or `--queue URL`; `rediss://` for TLS; a password in
the URL or in $REDIS_PASSWORD, never printed). The rules stay in `requests.py`; this module
keeps their state in Redis, under a prefix per stream, and runs each call of the queue as one
optimistic transaction: WATCH the keys, read them, apply the rules, MULTI/EXEC the changes,
and run the call again on the new state when another process changed it meanwhile.

    PREFIX + "queue"          the state a SQLite store keeps: what plays and since when (wall
                              clock), the queue with its votes and who asked, the playlist's
                              place, the next id
    PREFIX + "sender:" + KEY  one sender's attempt budget and request times (an address or a
                              chat account), expiring once they no longer matter
    PREFIX + "viewers"        each process's MJPEG viewers and when it said so (a hash), added
                              up for the state every process shows
    PREFIX + "recent"         the ids of the newest finished dreams, newest first (a list), and
    PREFIX + "recent:items"   each one's label, who asked, its thumbnail and clip (a hash): the
                              strip every process shows, kept as a SQLite store keeps it

Redis unreachable while running: a request is refused with RequestError("unavailable"), never
a false ack; the dream goes on with the last target it read; Redis is tried again after a
backoff (0.5 s, doubling to 5 s), with one warning when it goes and one line when it is back.
Run Redis with `appendonly yes` and an acknowledged request survives Redis restarting too.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from datetime import datetime

import redis

from dreamer.classes import RequestError

from .requests import SavedStateError
from .store import StateError

log = logging.getLogger(__name__)

TIMEOUT_S = 0.5  # connect and reply: the dream thread asks before each frame
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 5.0  # after a failure, Redis is left alone this long, doubling
TRIES = 20  # transactions lost to other processes' changes before a call gives up
VIEWERS_FRESH_S = 10.0  # a process's viewer count older than this is gone (a process killed)
RECENT_KEPT = 8  # finished dreams kept in the strip
CONFLICT = "Watched variable changed."  # redis-py's WatchError at EXEC; its others are a lost connection
NOT_A_URL = ("not a Redis URL: redis://[:PASSWORD@]HOST:PORT/DB or rediss://... "
             "(in a password, write / ? # @ as %2F %3F %23 %40)")


class QueueUnreachable(StateError):
    """Redis cannot be used at start (unreachable, refused, a state this code cannot read):
    one line for the user, exit 2."""


def shown_url(url: str) -> str:
    """redis://user:secret@host:6379/0 -> redis://****@host:6379/0: no name, password or query.
    Everything up to the last "@" goes, whatever it holds (a password may hold / ? #)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "****"
    if "@" in rest:
        rest = "****@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{re.split(r'[?#]', rest)[0]}"


def _secrets(url: str) -> list[str]:
    """What must never be printed: the URL's user and password (each, and together) and $REDIS_PASSWORD."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    found = {userinfo, *userinfo.split(":"), os.environ.get("REDIS_PASSWORD", "")}
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def _why(e: BaseException, secrets: list[str]) -> str:
    """Redis's reason, without a command's text (it holds viewers' names and addresses) or a secret."""
    text = re.sub(r"Command # \d+ \(.*\) of pipeline caused error: ", "", str(e), flags=re.S)
    for secret in secrets:
        text = text.replace(secret, "****")
    return text.splitlines()[0][:200] if text.strip() else type(e).__name__


class RedisShared:
    def __init__(self, url: str, prefix: str):
        """Connect to the Redis at `url` and check it answers; QueueUnreachable if not."""
        self.shown, self.prefix, self.key = shown_url(url), prefix, prefix + "queue"
        self._secrets = _secrets(url)
        in_url = ":" in url.partition("://")[2].rpartition("@")[0]
        try:
            self.client = redis.Redis.from_url(url, password=None if in_url else os.environ.get("REDIS_PASSWORD"),
                                               socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        except (ValueError, TypeError):  # its message may quote the password: ours does not
            raise QueueUnreachable(f"--queue {self.shown}: {NOT_A_URL}") from None
        try:
            self.client.ping()
        except redis.RedisError as e:
            raise QueueUnreachable(f"--queue {self.shown}: {_why(e, self._secrets)}") from None
        self.process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"  # this process's field
        self._seen: bytes | None = None  # the state as last read: another process's change bumps the version
        self._retry_at = 0.0
        self._delay = 0.0
        self.failing_since: float | None = None

    @property
    def available(self) -> bool:
        return self.failing_since is None

    def start(self, queue) -> None:
        """Pick up the shared state into `queue`, or write `queue`'s where there is none yet."""
        try:
            self.run(queue, lambda: None, starting=True)
        except RequestError as e:
            raise QueueUnreachable(f"--queue {self.shown}: {e.message}") from None

    def move_aside(self) -> str | None:
        """--fresh: the kept state renamed to PREFIX queue.old-STAMP (never over another); its name."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            if not self.client.exists(self.key):
                return None
            for n in range(1, 100):
                name = f"{self.key}.old-{stamp}" + (f"-{n}" if n > 1 else "")
                if self.client.renamenx(self.key, name):
                    log.info("the kept queue is now %s", name)
                    return name
        except redis.RedisError as e:
            raise QueueUnreachable(f"--queue {self.shown}: {_why(e, self._secrets)}") from None
        raise QueueUnreachable(f"--queue {self.shown}: no free name to move {self.key} aside")

    # -- calls ------------------------------------------------------------------------------
    def run(self, queue, change, sender: str | None = None, starting: bool = False):
        """`change()` (the queue's rules on its in-memory state) as one transaction on the
        shared state and `sender`'s budget. Called with the queue's lock held."""
        if time.monotonic() < self._retry_at:
            raise RequestError("unavailable", "queue unavailable, try again")
        try:
            for _ in range(TRIES):
                try:
                    return self._transaction(queue, change, sender)
                except redis.WatchError as e:
                    if str(e) != CONFLICT:  # the connection went while watching: EXEC may have run
                        raise redis.ConnectionError(str(e)) from None
                    continue  # another process changed the state first: the call again, on theirs
            self._forget_changes(queue)
            raise RequestError("unavailable", "the queue is busy, try again")
        except SavedStateError as e:
            if starting:
                raise RequestError("unavailable", f"the queue kept in {self.key} cannot be read ({e}); "
                                                  "--fresh moves it aside") from None
            self._failed(f"the queue kept in {self.key} cannot be read ({e})")
        except redis.RedisError as e:
            self._failed(_why(e, self._secrets))
        self._forget_changes(queue)
        raise RequestError("unavailable", "queue unavailable, try again")

    def _forget_changes(self, queue) -> None:
        """A call that did not land leaves nothing behind: the queue as last read or written
        (never a change the others do not see, dreamed or shown meanwhile)."""
        self._load(queue, self._seen, queue.wall() - queue.clock())

    def _transaction(self, queue, change, sender: str | None):
        sender_key = None if sender is None else f"{self.prefix}sender:{sender}"
        keys = [self.key] + ([sender_key] if sender_key else [])
        with self.client.pipeline() as pipe:
            pipe.watch(*keys)
            raw, *raw_sender = pipe.mget(keys)
            offset = queue.wall() - queue.clock()
            self._load(queue, raw, offset)
            queue._changed = raw is None  # nothing kept yet: this process's state is the first
            if sender is not None:
                queue._users.pop(sender, None)
                if raw_sender[0] is not None:
                    try:
                        queue._users[sender] = queue.user_from_json(json.loads(raw_sender[0]), offset)
                    except ValueError:  # unreadable: a fresh budget, written over it below
                        pass
            refused = None
            try:
                result = change()
            except RequestError as e:  # refused: its sender's spent token is kept, nothing else
                result, refused = None, e
            state = json.dumps(queue.state(offset)).encode() if queue._changed and refused is None else None
            user = queue._users.pop(sender, None) if sender is not None else None
            if state is not None or user is not None:
                pipe.multi()
                if state is not None:
                    pipe.set(self.key, state)
                if user is not None:
                    pipe.set(sender_key, json.dumps(user.to_json(offset)), ex=math.ceil(queue.idle_after_s()) + 1)
                pipe.execute()  # WatchError when another process changed a key since the read
            if state is not None:
                self._seen = state
        self._recovered()
        if refused is not None:
            raise refused
        return result

    def refresh(self, queue) -> None:
        """Read the newest state into `queue` (a snapshot); the last one read while unreachable."""
        if time.monotonic() < self._retry_at:
            return
        try:
            raw = self.client.get(self.key)
            if raw is not None:
                self._load(queue, raw, queue.wall() - queue.clock())
        except SavedStateError as e:
            self._failed(f"the queue kept in {self.key} cannot be read ({e})")
            return
        except redis.RedisError as e:
            self._failed(_why(e, self._secrets))
            return
        self._recovered()

    def _load(self, queue, raw: bytes | None, offset: float) -> None:
        """Always restored (a transaction lost to another process left its changes in
        memory); a state another process wrote is a change this one shows."""
        if raw is None:
            return
        try:
            saved = json.loads(raw)
        except ValueError as e:
            raise SavedStateError(f"not JSON: {e}") from None
        queue._restore(saved, offset)
        if raw != self._seen:
            self._seen = raw
            queue.version += 1

    # -- beside the queue: the strip of recent dreams, the viewers -----------------------------
    def _beside(self, call, default=None):
        """`call()` on Redis outside the queue's transactions, under the same rule: skipped
        (`default`) while Redis is left alone after a failure, a failure starting that wait."""
        if time.monotonic() < self._retry_at:
            return default
        try:
            result = call()
        except redis.RedisError as e:
            self._failed(_why(e, self._secrets))
            return default
        self._recovered()
        return result

    def load_recent(self) -> list[dict] | None:
        """The newest RECENT_KEPT finished dreams, newest first: id, label, user, clip, jpeg (the
        calls a SqliteStore answers for one process). None while Redis cannot be reached (the
        caller keeps the strip it has)."""
        def read() -> list:
            ids = self.client.lrange(self.prefix + "recent", 0, RECENT_KEPT - 1)
            return self.client.hmget(self.prefix + "recent:items", ids) if ids else []
        items = self._beside(read)
        if items is None:
            return None
        kept = []
        for raw in items:
            try:
                d = json.loads(raw)
                kept.append({"id": str(d["id"]), "label": str(d["label"]), "user": d["user"], "clip": d["clip"],
                             "jpeg": base64.b64decode(d["jpeg"])})
            except (TypeError, ValueError, KeyError):  # gone meanwhile, or not one this code wrote
                continue
        return kept

    def add_recent(self, id: str, label: str, user: str | None, jpeg: bytes) -> None:
        """A dream has ended: kept once, whichever process says so first; the oldest beyond
        RECENT_KEPT go. Redis lost: this one is not kept (the strip is not the queue)."""
        items, order = self.prefix + "recent:items", self.prefix + "recent"
        item = json.dumps({"id": id, "label": label, "user": user, "clip": None,
                           "jpeg": base64.b64encode(jpeg).decode()})

        def add() -> None:
            if not self.client.hsetnx(items, id, item):
                return
            with self.client.pipeline() as pipe:
                pipe.lpush(order, id)
                pipe.lrange(order, RECENT_KEPT, -1)
                pipe.ltrim(order, 0, RECENT_KEPT - 1)
                _, dropped, _ = pipe.execute()
            if dropped:
                self.client.hdel(items, *dropped)
        self._beside(add)

    def set_clip(self, id: str, clip: str) -> None:
        items = self.prefix + "recent:items"
        raw = self._beside(lambda: self.client.hget(items, id))
        try:
            linked = json.dumps({**json.loads(raw), "clip": clip}) if raw is not None else None
        except ValueError:  # not one this code wrote
            return
        if linked is not None:
            self._beside(lambda: self.client.hset(items, id, linked))

    def viewers(self, mine: int, now: float | None = None) -> int | None:
        """Say this process's viewers; everyone's added up (counts older than VIEWERS_FRESH_S,
        a process that died, are dropped). None while Redis cannot be reached."""
        now = time.time() if now is None else now
        key = self.prefix + "viewers"

        def say() -> dict:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, self.process, f"{mine} {now}")
                pipe.hgetall(key)
                return pipe.execute()[1]
        counts = self._beside(say)
        if counts is None:
            return None
        total, gone = 0, []
        for field, value in counts.items():
            try:
                n, said = value.split()
                fresh = now - float(said) <= VIEWERS_FRESH_S
            except ValueError:  # not a count this code wrote
                fresh = False
            if fresh:
                total += int(n)
            else:
                gone.append(field)
        if gone:
            self._beside(lambda: self.client.hdel(key, *gone))
        return total

    def leave(self) -> None:
        """A clean stop: this process's viewers are no longer counted."""
        self._beside(lambda: self.client.hdel(self.prefix + "viewers", self.process))

    # -- failures ---------------------------------------------------------------------------
    def _failed(self, why: str) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            log.warning("queue unavailable: %s (%s); requests are refused until it is back", self.shown, why)
        self._delay = min(RETRY_MAX_S, max(RETRY_FIRST_S, 2 * self._delay))
        self._retry_at = now + self._delay

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.info("queue reachable again at %s after %.1f s", self.shown, time.monotonic() - self.failing_since)
            self.failing_since, self._delay, self._retry_at = None, 0.0, 0.0

    def close(self) -> None:
        self.client.close()
