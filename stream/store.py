"""Where the queue's state lives between runs: one SQLite file in the state folder.

`serve` keeps what plays and since when, the queue in order with its votes and who asked,
the playlist's position and the strip of recent dreams here, so a crash, a kill -9 or a
restart picks up where it was. The rules stay in `stream/requests.py`; this module only
keeps state, behind two calls a second store (Redis, later) can also answer:
`load_queue()` / `save_queue(state)` and `load_recent()` / `add_recent(...)`.

Each save is one short transaction in WAL mode with synchronous=NORMAL: committed to the
WAL without an fsync, so it survives the process dying (kill -9, a crash), not the machine
losing power; it costs ~0.1 ms (scripts/bench.py, "queue_store"). A save that fails (a full
disk) is one warning; the stream and the in-memory queue go on, and the newest state is
written again as soon as a write succeeds.

A folder is used by one process at a time: `serve` holds an flock on `serve.lock` there
(the kernel lets go when the process dies, however it dies).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "queue.sqlite3"
LOCK_FILE = "serve.lock"
SCHEMA_VERSION = 1  # PRAGMA user_version of the files this code writes
RETRY_EVERY_S = 5.0  # after a failed save, the newest state is tried again this often (and on every change)
RECENT_KEPT = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recent (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
                                   label TEXT NOT NULL, user TEXT, clip TEXT, jpeg BLOB NOT NULL);
"""


class StateError(Exception):
    """The state folder or file cannot be used: one line for the user, exit 2."""


def _why(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


class SqliteStore:
    def __init__(self, folder: Path | str, fresh: bool = False):
        """Open (or create) the state in `folder`, held for this process alone.

        Raises StateError, leaving every file as it was, for a folder that cannot be made or
        written, a folder another process holds, or a state file that cannot be read or is
        not one of ours. `fresh`: an existing file is moved aside (its new name is logged)
        and the state starts empty."""
        self.folder = Path(folder).expanduser()
        self.path = self.folder / STATE_FILE
        self._lock = threading.Lock()
        self._pending: str | None = None  # the newest queue state not yet written (after a failure)
        self._failing_since: float | None = None
        self._last_try = 0.0
        self._lock_file = self._hold_folder()
        try:
            if fresh:
                self._move_aside()
            self._db = self._open()
        except BaseException:
            self._lock_file.close()
            raise

    # -- opening --------------------------------------------------------------------------
    def _hold_folder(self):
        again = "; give another with --state-dir"
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StateError(f"cannot create the state folder {self.folder} ({_why(e)}){again}") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise StateError(f"cannot write in the state folder {self.folder} (permission denied){again}")
        try:
            f = open(self.folder / LOCK_FILE, "a+")
        except OSError as e:
            raise StateError(f"cannot write in the state folder {self.folder} ({_why(e)}){again}") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            raise StateError(f"another dreamstream serve{f' (pid {holder})' if holder.isdigit() else ''} uses "
                             f"the state folder {self.folder}; stop it first{again}") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        return f

    def _move_aside(self) -> None:
        if not self.path.exists():
            return
        aside = self.folder / f"{STATE_FILE}.{time.strftime('%Y%m%d-%H%M%S')}.old"
        for suffix in ("", "-wal", "-shm"):  # the WAL holds committed changes: it goes with its file
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                try:
                    part.rename(f"{aside}{suffix}")
                except OSError as e:
                    raise StateError(f"--fresh: cannot move {part} aside ({_why(e)})") from None
        log.warning("--fresh: the old state was moved aside to %s; starting with an empty queue", aside)

    def _open(self) -> sqlite3.Connection:
        fresh_hint = "; --fresh moves it aside and starts with an empty queue"
        existed = self.path.exists()
        if existed and not os.access(self.path, os.R_OK | os.W_OK):
            raise StateError(f"cannot read and write the state file {self.path} (permission denied){fresh_hint}")
        try:
            # autocommit: each statement is its own transaction unless BEGIN says otherwise
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=1.0)
        except sqlite3.Error as e:
            raise StateError(f"cannot open the state file {self.path} ({e}){fresh_hint}") from None
        try:
            if existed:  # read before anything is written: a file that is not ours stays as it was
                self._check(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            db.close()
            raise StateError(f"the state file {self.path} cannot be used ({e}){fresh_hint}") from None
        except StateError:
            db.close()
            raise
        return db

    def _check(self, db: sqlite3.Connection) -> None:
        """A file we can read whole, of a version we know, with state we can parse."""
        bad = f"the state file {self.path} is not a dreamstream state file or is damaged"
        hint = "; --fresh moves it aside and starts with an empty queue"
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise StateError(f"{bad} ({e}){hint}") from None
        if verdict != "ok":
            raise StateError(f"{bad} ({verdict}){hint}")
        if version > SCHEMA_VERSION:
            raise StateError(f"the state file {self.path} was written by a newer dreamstream (version {version}); "
                             f"use that one, or --fresh to start with an empty queue here")
        if tables and not {"kv", "recent"} <= tables:
            raise StateError(f"{bad} (tables {', '.join(sorted(tables))}){hint}")
        if tables:
            try:
                self._read_queue(db)
            except (ValueError, TypeError, sqlite3.Error) as e:
                raise StateError(f"{bad} (the queue: {e}){hint}") from None

    # -- the queue ------------------------------------------------------------------------
    @staticmethod
    def _read_queue(db: sqlite3.Connection) -> dict | None:
        row = db.execute("SELECT value FROM kv WHERE key='queue'").fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        return state

    def load_queue(self) -> dict | None:
        """The queue's state as `save_queue` was last given it; None for a new folder."""
        with self._lock:
            return self._read_queue(self._db)

    def save_queue(self, state: dict) -> None:
        """Keep `state` (JSON-able). Never raises: a failure is logged once, and the newest
        state is written with the next save or `retry()` that succeeds."""
        self._pending = json.dumps(state, separators=(",", ":"))
        self._write()

    def retry(self) -> None:
        """After a failed save, try again (at most every RETRY_EVERY_S); cheap otherwise."""
        if self._pending is not None and time.monotonic() - self._last_try >= RETRY_EVERY_S:
            self._write()

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def _write(self) -> None:
        with self._lock:
            value, self._last_try = self._pending, time.monotonic()
            if value is None or self._db is None:
                return
            try:
                self._db.execute("INSERT INTO kv (key, value) VALUES ('queue', ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (value,))
            except sqlite3.Error as e:
                self._failed(e)
                return
            if self._pending is value:
                self._pending = None
            self._recovered()

    def _failed(self, e: sqlite3.Error) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("cannot save the queue's state in %s (%s); the stream and the queue go on in memory, "
                        "and saving resumes when it can", self.path, e)
        try:
            if self._db.in_transaction:
                self._db.rollback()
        except sqlite3.Error:
            pass

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("the queue's state is saved again in %s (after %.0f s)", self.path,
                        time.monotonic() - self._failing_since)
            self._failing_since = None

    # -- recent dreams --------------------------------------------------------------------
    def load_recent(self) -> list[dict]:
        """The last RECENT_KEPT finished dreams, newest first: id, label, user, clip, jpeg."""
        with self._lock:
            rows = self._db.execute("SELECT id, label, user, clip, jpeg FROM recent ORDER BY seq DESC LIMIT ?",
                                    (RECENT_KEPT,)).fetchall()
        return [{"id": i, "label": label, "user": user, "clip": clip, "jpeg": bytes(jpeg)}
                for i, label, user, clip, jpeg in rows]

    def add_recent(self, id: str, label: str, user: str | None, jpeg: bytes) -> None:
        """A dream has ended (its thumbnail, ~10 kB); only the newest RECENT_KEPT are kept."""
        self._recent_write("INSERT OR REPLACE INTO recent (id, label, user, jpeg) VALUES (?, ?, ?, ?)",
                           (id, label, user, jpeg))

    def set_clip(self, id: str, clip: str) -> None:
        self._recent_write("UPDATE recent SET clip=? WHERE id=?", (clip, id))

    def _recent_write(self, sql: str, args: tuple) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql, args)
                self._db.execute("DELETE FROM recent WHERE id NOT IN "
                                 "(SELECT id FROM recent ORDER BY seq DESC LIMIT ?)", (RECENT_KEPT,))
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._failed(e)
                return
            self._recovered()

    def close(self) -> None:
        """Write what is pending, fold the WAL into the file, let go of the folder."""
        if self._pending is not None:
            self._write()
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None  # a thread still running may save: nothing happens
        self._lock_file.close()
