"""Where the queue's state lives between runs: one SQLite file in the state folder.

`serve` keeps what plays and since when, the queue in order with its votes and who asked,
the playlist's position and the strip of recent dreams here, so a crash, a kill -9 or a
restart picks up where it was. The rules stay in `stream/queue/requests.py`; this module only
keeps state, behind two calls a second store (Redis, later) can also answer:
`load_queue()` / `save_queue(state)` and `load_recent()` / `add_recent(...)`.

The queue's saves never wait for the disk: `save_queue` hands the newest state to one writer
thread ("state-writer", latest wins) and returns, so the event loop and the dream thread
never block on SQLite; the writer commits it within a fraction of a millisecond, one short
transaction in WAL mode with synchronous=NORMAL (to the WAL without an fsync: it survives
the process dying, kill -9 or a crash, not the machine losing power). A save that fails (a
full disk) is one warning; the stream and the in-memory queue go on, and the writer tries the
newest state again every RETRY_EVERY_S until the disk takes it.

A folder is used by one process at a time: `serve` holds an flock on `serve.lock` there
(the kernel lets go when the process dies, however it dies).
"""
from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

STATE_FILE = "queue.sqlite3"
LOCK_FILE = "serve.lock"
SCHEMA_VERSION = 1  # PRAGMA user_version of the files this code writes
RETRY_EVERY_S = 5.0  # after a failed save, the writer tries the newest state again this often
RECENT_KEPT = 8
SIDE_FILES = ("", "-wal", "-shm")  # a SQLite file in WAL mode is these three

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
    def __init__(self, folder: Path | str, fresh: bool = False, check: Callable[[dict], None] | None = None):
        """Open (or create) the state in `folder`, held for this process alone.

        Raises StateError, leaving every file as it was, for a folder that cannot be made or
        written, a folder another process holds, or a state file that cannot be read or is
        not one of ours: the file is read whole through a read-only connection, the saved
        queue given to `check` (which raises ValueError for one it cannot use), before
        anything is written. `fresh`: an existing file is moved aside (its new name is
        logged) and the state starts empty."""
        self.folder = Path(folder).expanduser().absolute()
        self.path = self.folder / STATE_FILE
        self.retry_every_s = RETRY_EVERY_S
        self._lock = threading.Lock()  # the connection: one statement or transaction at a time
        self._slot = threading.Condition()  # the writer's slot: the newest queue state not yet written
        self._pending: dict | None = None
        self._closing = False
        self._failing_since: float | None = None
        self._lock_file = self._hold_folder()
        try:
            if fresh:
                self._move_aside()
            self._db = self._open(check)
        except BaseException:
            self._lock_file.close()
            raise
        self._writer = threading.Thread(target=self._write_loop, name="state-writer", daemon=True)
        self._writer.start()

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
        stamp = self.folder / f"{STATE_FILE}.{time.strftime('%Y%m%d-%H%M%S')}"
        names = (Path(f"{stamp}{f'-{n}' if n else ''}.old") for n in itertools.count())
        aside = next(a for a in names if not any(Path(f"{a}{x}").exists() for x in SIDE_FILES))  # never over one
        for suffix in SIDE_FILES:  # the WAL holds committed changes: it goes with its file
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                try:
                    part.rename(f"{aside}{suffix}")
                except OSError as e:
                    raise StateError(f"--fresh: cannot move {part} aside ({_why(e)})") from None
        log.warning("--fresh: the old state was moved aside to %s; starting with an empty queue", aside)

    def _open(self, check: Callable[[dict], None] | None) -> sqlite3.Connection:
        fresh_hint = "; --fresh moves it aside and starts with an empty queue"
        if self.path.exists():
            if not os.access(self.path, os.R_OK | os.W_OK):
                raise StateError(f"cannot read and write the state file {self.path} (permission denied){fresh_hint}")
            self._check(check)
        try:
            # autocommit: each statement is its own transaction unless BEGIN says otherwise
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=1.0)
        except sqlite3.Error as e:
            raise StateError(f"cannot open the state file {self.path} ({e}){fresh_hint}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            db.close()
            raise StateError(f"the state file {self.path} cannot be used ({e}){fresh_hint}") from None
        return db

    def _check(self, check: Callable[[dict], None] | None) -> None:
        """A file we can read whole, of a version we know, with state we can use; read through
        a read-only connection, which neither writes nor folds a WAL into the file on close."""
        bad = f"the state file {self.path} is not a dreamstream state file or is damaged"
        hint = "; --fresh moves it aside and starts with an empty queue"
        try:
            db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as e:
            raise StateError(f"cannot open the state file {self.path} ({e}){hint}") from None
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if verdict != "ok":
                raise StateError(f"{bad} ({verdict}){hint}")
            if version > SCHEMA_VERSION:
                raise StateError(f"the state file {self.path} was written by a newer dreamstream (version "
                                 f"{version}); use that one, or --fresh to start with an empty queue here")
            if tables and not {"kv", "recent"} <= tables:
                raise StateError(f"{bad} (tables {', '.join(sorted(tables))}){hint}")
            if tables:
                state = self._read_queue(db)
                if state is not None and check is not None:
                    check(state)
                self._read_recent(db)
        except sqlite3.DatabaseError as e:
            raise StateError(f"{bad} ({e}){hint}") from None
        except (ValueError, TypeError, KeyError) as e:
            raise StateError(f"{bad} (the saved queue: {e}){hint}") from None
        finally:
            db.close()

    # -- the queue ------------------------------------------------------------------------
    @staticmethod
    def _read_queue(db: sqlite3.Connection) -> dict | None:
        row = db.execute("SELECT value FROM kv WHERE key='queue'").fetchone()
        if row is None:
            return None
        state = json.loads(row[0], parse_constant=_no_constant)
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        return state

    def load_queue(self) -> dict | None:
        """The queue's state as `save_queue` was last given it; None for a new folder."""
        with self._lock:
            return self._read_queue(self._db)

    def save_queue(self, state: dict) -> None:
        """Keep `state` (JSON-able, not changed afterwards): handed to the writer, which writes
        the newest one it has; returns at once."""
        with self._slot:
            self._pending = state
            self._slot.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the newest state is written (True), or a write failed or `timeout` passed."""
        end = time.monotonic() + timeout
        with self._slot:
            while self._pending is not None and self._failing_since is None and not self._closing:
                if not self._slot.wait(max(0.0, end - time.monotonic())):
                    break
            return self._pending is None

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def _write_loop(self) -> None:
        while True:
            with self._slot:
                while self._pending is None and not self._closing:
                    self._slot.wait()
                state = self._pending
                if state is None:
                    return  # closing, everything written
            try:
                ok = self._write(json.dumps(state, separators=(",", ":"), allow_nan=False))
            except (TypeError, ValueError):  # a state no JSON can hold (a bug): said, dropped, the next one written
                log.exception("the queue's state cannot be saved")
                ok = True
            with self._slot:
                if ok and self._pending is state:
                    self._pending = None
                self._slot.notify_all()  # flush() waits on this
                if not ok:
                    if self._closing:
                        return
                    self._slot.wait(self.retry_every_s)  # a newer state or closing wakes it sooner

    def _write(self, value: str) -> bool:
        with self._lock:
            if self._db is None:
                return True
            try:
                self._db.execute("INSERT INTO kv (key, value) VALUES ('queue', ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (value,))
            except sqlite3.Error as e:
                self._failed(e)
                return False
            self._recovered()
            return True

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
            log.info("the queue's state is saved again in %s (after %.0f s)", self.path,
                     time.monotonic() - self._failing_since)
            self._failing_since = None

    # -- recent dreams --------------------------------------------------------------------
    @staticmethod
    def _read_recent(db: sqlite3.Connection) -> list[dict]:
        rows = db.execute("SELECT id, label, user, clip, jpeg FROM recent ORDER BY seq DESC LIMIT ?",
                          (RECENT_KEPT,)).fetchall()
        out = []
        for i, label, user, clip, jpeg in rows:
            if not (isinstance(i, str) and isinstance(label, str) and isinstance(jpeg, bytes)
                    and isinstance(user, (str, type(None))) and isinstance(clip, (str, type(None)))):
                raise ValueError(f"recent dream {i!r} is not what this code writes")
            out.append({"id": i, "label": label, "user": user, "clip": clip, "jpeg": jpeg})
        return out

    def load_recent(self) -> list[dict]:
        """The last RECENT_KEPT finished dreams, newest first: id, label, user, clip, jpeg."""
        with self._lock:
            return self._read_recent(self._db)

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

    def close(self, timeout: float = 2.0) -> None:
        """Write what is pending (a failing disk gets one more try), fold the WAL into the
        file, let go of the folder."""
        with self._slot:
            self._closing = True
            self._slot.notify_all()
        self._writer.join(timeout)
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None  # a thread still running may save: nothing happens
        self._lock_file.close()


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number this code writes")
