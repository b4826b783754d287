"""The queue survives the process: a real `serve` killed with SIGKILL (and stopped cleanly)
and started again on the same state folder; the state folder's bad cases, each one line and
exit 2 with the files left as they were."""
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TEST_CONFIG, free_port, start_server, stop_server

CONFIG = TEST_CONFIG.replace("hold_s = 4.0", "hold_s = 120.0").replace("cooldown_s = 0.5", "cooldown_s = 0.0")


def as_a_user():
    """In the child: root without the power to ignore file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH, CAP_FOWNER dropped from the bounding set, so the exec'd process never
    has them), so a read-only folder is read-only to it as it is to any user."""
    if os.geteuid() != 0:
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    for cap in (1, 2, 3):
        if prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


def serve_fails(state: Path, *extra: str) -> list[str]:
    """`serve` on `state`, expected to refuse at start: its stderr lines."""
    done = subprocess.run([sys.executable, "-m", "stream", "serve", "--device", "cpu", "--state-dir", str(state),
                           "--port", str(free_port()), "--ws-port", str(free_port()), *extra],
                          capture_output=True, text=True, timeout=60, preexec_fn=as_a_user)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()


def queue_of(state: dict) -> list[tuple]:
    return [(e["id"], e["label"], e["votes"], e["user"]) for e in state["queue"]]


def test_requests_votes_and_time_left_survive_kill_9_and_a_clean_stop(tmp_path):
    folder = tmp_path / "state"
    server = start_server(tmp_path, CONFIG, state_dir=folder)
    try:
        for text, user in [("pizza", "ann"), ("lemon", "bob"), ("daisy", "cat"), ("daisy", "dan")]:
            code, ack = server.post("/api/request", f'{{"text": "{text}", "user": "{user}"}}'.encode())
            assert code == 200, ack
        deadline = time.monotonic() + 10
        while not (before := server.get_json("/api/state"))["recent"] and time.monotonic() < deadline:
            time.sleep(0.2)  # the volcano the first request replaced goes into the strip
        assert before["recent"] and before["recent"][0]["label"] == "volcano"
        assert before["target"]["label"] == "pizza"
        assert queue_of(before) and [q[1:3] for q in queue_of(before)] == [("daisy", 2), ("lemon", 1)]
    finally:
        server.proc.kill()
        server.proc.wait(10)
    killed_at = time.monotonic()

    server = start_server(tmp_path, CONFIG, state_dir=folder)
    try:
        after = server.get_json("/api/state")
        waited = time.monotonic() - killed_at
        assert after["target"]["id"] == before["target"]["id"] and after["target"]["user"] == "ann"
        left = before["target"]["remaining_s"]
        assert left - waited - 5 <= after["target"]["remaining_s"] <= left, (before["target"], after["target"])
        assert queue_of(after) == queue_of(before)
        assert [r["id"] for r in after["recent"]] == [r["id"] for r in before["recent"]]
        code, _, jpeg = server.get(after["recent"][0]["thumb"])
        assert code == 200 and jpeg[:2] == b"\xff\xd8"
        code, ack = server.post("/api/request", b'{"text": "lemon", "user": "eve"}')
        # a vote on the kept entry: two votes each, and it arrived first, so it leads the tie
        assert code == 200 and ack["position"] == 1 and ack["id"] == queue_of(before)[1][0]
        again = server.get_json("/api/state")
    finally:
        rc, _ = stop_server(server)
    assert rc == 0, server.log.read_text()[-2000:]

    server = start_server(tmp_path, CONFIG, state_dir=folder)  # after a clean stop too
    try:
        last = server.get_json("/api/state")
        assert last["target"]["id"] == before["target"]["id"]
        assert queue_of(last) == queue_of(again)
        assert [q[2] for q in queue_of(last)] == [2, 2]
    finally:
        stop_server(server)
    log = server.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def test_a_second_serve_on_the_same_folder_refuses_to_start(tmp_path):
    folder = tmp_path / "state"
    server = start_server(tmp_path, CONFIG, state_dir=folder)
    try:
        lines = serve_fails(folder)
        assert len(lines) == 1 and f"(pid {server.proc.pid}) uses the state folder {folder}" in lines[0], lines
        assert server.get("/healthz")[0] == 200  # the first goes on
    finally:
        stop_server(server)


def test_a_corrupt_state_file_is_one_line_and_fresh_moves_it_aside(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    junk = os.urandom(8192)
    (folder / "queue.sqlite3").write_bytes(junk)
    lines = serve_fails(folder)
    assert len(lines) == 1 and str(folder / "queue.sqlite3") in lines[0] and "--fresh" in lines[0], lines
    assert (folder / "queue.sqlite3").read_bytes() == junk

    server = start_server(tmp_path, CONFIG, ["--fresh"], state_dir=folder)
    try:
        assert server.get_json("/api/state")["queue"] == []
    finally:
        stop_server(server)
    aside = [p for p in folder.iterdir() if p.name.endswith(".old")]
    assert len(aside) == 1 and aside[0].read_bytes() == junk
    assert str(aside[0]) in server.log.read_text()


@pytest.mark.parametrize("case", ["folder", "file"])
def test_a_state_folder_or_file_that_cannot_be_written_is_one_line(tmp_path, case):
    folder = tmp_path / "state"
    folder.mkdir()
    if case == "folder":
        folder.chmod(0o555)
        says = f"cannot write in the state folder {folder}"
    else:
        (folder / "queue.sqlite3").write_bytes(b"")
        (folder / "queue.sqlite3").chmod(0o400)
        says = f"cannot read and write the state file {folder / 'queue.sqlite3'}"
    try:
        lines = serve_fails(folder)
    finally:
        folder.chmod(0o755)
    assert len(lines) == 1 and says in lines[0], lines
    assert sorted(p.name for p in folder.iterdir()) == ([] if case == "folder" else ["queue.sqlite3", "serve.lock"])
