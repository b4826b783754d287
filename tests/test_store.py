"""The queue kept in SQLite (stream/queue/store.py): real files, injected clocks, no sleeping."""
import fcntl
import json
import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from stream.queue.requests import QueuePolicy, RequestQueue
from stream.queue.store import LOCK_FILE, STATE_FILE, SqliteStore, StateError


class Clocks:
    """A monotonic clock and a wall clock that move together, and a restart: a new monotonic
    origin (as a new process has) while the wall clock goes on."""

    def __init__(self):
        self.mono, self.wall = 1000.0, 1_800_000_000.0

    def advance(self, s: float) -> None:
        self.mono += s
        self.wall += s

    def restart(self, down_s: float) -> None:
        self.mono = 5.0
        self.wall += down_s


@pytest.fixture(autouse=True)
def closed_after(monkeypatch):
    """Every store a test opens is closed at its end (its writer thread, its files)."""
    opened = []
    real = SqliteStore.__init__

    def init(self, *a, **kw):
        real(self, *a, **kw)
        opened.append(self)
    monkeypatch.setattr(SqliteStore, "__init__", init)
    yield
    for store in opened:
        store.close()


def make(folder, clocks: Clocks, **kw) -> RequestQueue:
    policy = QueuePolicy(**{"cooldown_s": 0, **kw})
    return RequestQueue(policy, ["volcano", "jellyfish", "daisy"], lambda: clocks.mono,
                        store=SqliteStore(folder, check=RequestQueue.check_saved), wall=lambda: clocks.wall)


def test_queue_votes_and_remaining_time_survive_a_restart(tmp_path):
    clocks = Clocks()
    q = make(tmp_path, clocks, hold_s=60)
    assert q.submit("pizza", "ann").position == 0
    q.submit("lemon", "bob")
    q.submit("daisy", "cat")
    q.submit("daisy", "dan")  # a vote: daisy goes first
    clocks.advance(20)
    before = q.snapshot()
    assert before["target"]["remaining_s"] == 40
    q.store.close()

    clocks.restart(down_s=5)
    q2 = make(tmp_path, clocks, hold_s=60)
    after = q2.snapshot()
    assert after["target"]["id"] == before["target"]["id"] and after["target"]["label"] == "pizza"
    assert after["target"]["user"] == "ann"
    assert after["target"]["remaining_s"] == 35  # the time the restart took counts
    assert [(e["label"], e["votes"], e["user"]) for e in after["queue"]] == [("daisy", 2, "cat"), ("lemon", 1, "bob")]
    assert q2.submit("daisy", "eve").position == 1  # votes go on counting who asked
    assert q2.snapshot()["queue"][0]["votes"] == 3
    assert q2.submit("castle", "fay").id not in {e["id"] for e in before["queue"]}  # ids go on, never reused
    clocks.advance(35)
    assert q2.current().label == "daisy"


def test_playlist_goes_on_where_it_was(tmp_path):
    clocks = Clocks()
    q = make(tmp_path, clocks, hold_s=10)
    assert q.current().label == "volcano"
    clocks.advance(10)
    assert q.current().label == "jellyfish"
    q.store.close()
    clocks.restart(down_s=1)
    q2 = make(tmp_path, clocks, hold_s=10)
    assert q2.current().label == "jellyfish"  # still playing, 9 s left
    assert q2.snapshot()["target"]["remaining_s"] == 9
    clocks.advance(9)
    assert q2.current().label == "daisy"


def test_a_hold_that_ran_out_while_down_moves_on(tmp_path):
    clocks = Clocks()
    q = make(tmp_path, clocks, hold_s=30)
    q.submit("pizza", "ann")
    q.submit("lemon", "bob")
    q.store.close()
    clocks.restart(down_s=45)
    q2 = make(tmp_path, clocks, hold_s=30)
    assert q2.current().label == "lemon"
    assert q2.snapshot()["queue"] == []


def test_the_first_class_is_only_for_a_new_folder(tmp_path):
    clocks = Clocks()
    q = make(tmp_path, clocks, hold_s=30)
    q.submit("pizza", "ann")
    q.store.close()
    q2 = RequestQueue(QueuePolicy(hold_s=30), ["volcano"], lambda: clocks.mono, first="castle",
                      store=SqliteStore(tmp_path), wall=lambda: clocks.wall)
    assert q2.current().label == "pizza"


def test_a_folder_is_held_by_one_process(tmp_path):
    store = SqliteStore(tmp_path)
    with pytest.raises(StateError, match=r"another dreamstream serve \(pid \d+\) uses the state folder"):
        SqliteStore(tmp_path)
    store.close()
    SqliteStore(tmp_path).close()  # let go: usable again


def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / STATE_FILE
    junk = b"not a database at all\n" * 200
    path.write_bytes(junk)
    with pytest.raises(StateError) as e:
        SqliteStore(tmp_path)
    assert str(path) in str(e.value) and "--fresh" in str(e.value)
    assert path.read_bytes() == junk
    with open(tmp_path / LOCK_FILE) as f:  # the refusal let go of the folder
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_another_programs_database_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / STATE_FILE)
    db.execute("CREATE TABLE songs (title TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="not a dreamstream state file"):
        SqliteStore(tmp_path)


@pytest.mark.parametrize("saved", [{"current": {"id": "r1"}}, "NaN", "no parts", "future"])
def test_a_saved_queue_that_cannot_be_picked_up_is_refused_before_anything_is_written(tmp_path, saved):
    clocks = Clocks()
    q = make(tmp_path, clocks, hold_s=30)
    q.submit("pizza", "ann")
    q.store.flush()
    state = q.store.load_queue()
    if saved == "future":  # the wall clock was set back an hour between runs: starts now, not in an hour
        q.store.close()
        clocks.restart(down_s=-3600)
        q2 = make(tmp_path, clocks, hold_s=30)
        assert q2.snapshot()["target"]["remaining_s"] == 30 and q2.current().label == "pizza"
        clocks.advance(30)
        assert q2.current().label != "pizza"
        return
    q.store.close()
    db = sqlite3.connect(tmp_path / STATE_FILE)  # written as no dreamstream writes it
    value = (json.dumps(state).replace('"since":', '"since": NaN, "x":') if saved == "NaN" else
             json.dumps({**state, "current": {**state["current"], "parts": []}}) if saved == "no parts" else
             json.dumps(saved))
    db.execute("UPDATE kv SET value=? WHERE key='queue'", (value,))
    db.commit()
    db.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StateError, match="not a dreamstream state file or is damaged.*--fresh"):
        SqliteStore(tmp_path, check=RequestQueue.check_saved)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before


def test_a_recent_table_of_another_shape_is_refused(tmp_path):
    SqliteStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / STATE_FILE)
    db.execute("DROP TABLE recent")
    db.execute("CREATE TABLE recent (seq INTEGER PRIMARY KEY, id TEXT, label TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="is damaged"):
        SqliteStore(tmp_path)


def test_fresh_moves_the_old_file_aside(tmp_path, caplog):
    clocks = Clocks()
    q = make(tmp_path, clocks)
    q.submit("pizza", "ann")
    q.store.close()
    (tmp_path / STATE_FILE).write_bytes(b"junk")
    store = SqliteStore(tmp_path, fresh=True)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(STATE_FILE + ".") and p.name.endswith(".old")]
    assert len(aside) == 1 and aside[0].read_bytes() == b"junk"
    assert str(aside[0]) in caplog.text
    assert store.load_queue() is None
    store.close()
    (tmp_path / STATE_FILE).write_bytes(b"more junk")
    SqliteStore(tmp_path, fresh=True).close()  # within the same second: a second name, the first kept
    aside = sorted(p.read_bytes() for p in tmp_path.iterdir() if p.name.endswith(".old"))
    assert aside == [b"junk", b"more junk"]


def test_a_full_disk_is_one_warning_and_saving_resumes(tmp_path, caplog):
    caplog.set_level(logging.INFO, "stream.queue.store")
    clocks = Clocks()
    q = make(tmp_path, clocks, hold_s=30, max_queue=200)
    store = q.store
    store.retry_every_s = 0.05
    assert store.flush()
    with store._lock:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite answers SQLITE_FULL past this: a full disk
    labels = ["pizza", "lemon", "daisy", "castle", "broccoli", "goldfish", "jellyfish", "coral reef",
              "strawberry", "lighthouse", "peafowl", "volcano", "monarch butterfly", "orange", "banana"]
    for i, label in enumerate(labels):
        q.submit(label, f"user{i}")  # every one accepted, whatever the disk says
    for i in range(60):  # votes from long names: the state outgrows the pages it has
        q.submit("lemon", f"{i:03d}".ljust(40, "x"))
    assert not store.flush()
    assert [r.levelname for r in caplog.records].count("WARNING") == 1
    assert "cannot save the queue's state" in caplog.text and store.failing
    assert len(q.snapshot()["queue"]) == len(labels) - 1

    with store._lock:
        store._db.execute("PRAGMA max_page_count=1073741823")  # room again: the writer's next try takes
    deadline = time.monotonic() + 5
    while store.failing and time.monotonic() < deadline:
        store.flush(0.1)
    assert store.flush() and not store.failing and "saved again" in caplog.text
    assert [r.levelname for r in caplog.records].count("WARNING") == 1
    store.close()
    q2 = make(tmp_path, clocks, hold_s=30, max_queue=200)
    snap = q2.snapshot()["queue"]
    assert snap[0]["label"] == "lemon" and snap[0]["votes"] == 61
    assert sorted(e["label"] for e in snap) == sorted(labels[1:])


def test_recent_dreams_and_their_clips_are_kept(tmp_path):
    store = SqliteStore(tmp_path)
    for i in range(10):
        store.add_recent(f"r{i}", f"label {i}", None if i % 2 else "ann", bytes([i]) * 100)
    store.set_clip("r9", "/clips/r9.mp4")
    store.close()
    recent = SqliteStore(tmp_path).load_recent()
    assert [r["id"] for r in recent] == [f"r{i}" for i in range(9, 1, -1)]  # newest first, 8 kept
    assert recent[0] == {"id": "r9", "label": "label 9", "user": None, "clip": "/clips/r9.mp4", "jpeg": b"\x09" * 100}
    assert recent[1]["user"] == "ann"


def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o500)
    if os.access(folder, os.W_OK):
        pytest.skip("this user writes anywhere (root): the end-to-end test drops that power to check it")
    with pytest.raises(StateError, match="cannot write in the state folder"):
        SqliteStore(folder)


def test_the_state_folder_by_default(monkeypatch, tmp_path):
    from stream.config import QueueSettings, state_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir(QueueSettings()) == tmp_path / "xdg" / "dreamstream"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/dreamstream")  # systemd's StateDirectory=
    assert state_dir(QueueSettings()) == Path("/var/lib/dreamstream")
    assert state_dir(QueueSettings(state_dir="~/q")) == Path.home() / "q"  # the setting (or --state-dir) wins
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_dir(QueueSettings()) == Path.home() / ".local" / "state" / "dreamstream"
