"""A stream that never stops: real `serve --role dreamer` processes on one real redis-server,
one active and one standing by, and a front door showing whichever is active. The active one
killed (SIGKILL), paused past its lease (SIGSTOP, then SIGCONT) and stopped cleanly (SIGTERM):
each time the other takes over, the front door keeps the picture, and the queue (what plays,
its time, what is next) is the same on both sides of the switch."""
import json
import signal
import time

import pytest
from peers import REDIS_SERVER, RedisServer

from .conftest import TEST_CONFIG, start_server, stop_server
from .test_shared import ask, health_of, until

pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="needs Debian redis-server (make test installs it as root)")
CONFIG = TEST_CONFIG.replace("hold_s = 4.0", "hold_s = 300.0").replace("cooldown_s = 0.5", "cooldown_s = 0.0")


def lease(server) -> dict:
    return health_of(server)[1]["lease"]


def queue_of(state: dict) -> tuple:
    return state["target"]["id"], [(q["id"], q["votes"]) for q in state["queue"]]


def frames_flow(front, seconds: float = 1.0) -> bool:
    """A new frame at the front door within `seconds`."""
    first = front.get("/frame.jpg")[2]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if front.get("/frame.jpg")[2] != first:
            return True
        time.sleep(0.05)
    return False


def test_a_standby_dreamer_takes_over_when_the_active_one_dies_pauses_or_stops(tmp_path):
    redis = RedisServer(tmp_path).start()
    dreamers, front = {}, None
    try:
        for name in ("a", "b", "a-again", "front"):
            (tmp_path / name).mkdir()
        role = ["--queue", redis.url, "--role", "dreamer"]
        dreamers["a"] = start_server(tmp_path / "a", CONFIG, role)
        assert until(lambda: lease(dreamers["a"])["state"] == "active")
        dreamers["b"] = start_server(tmp_path / "b", CONFIG, role)
        assert until(lambda: lease(dreamers["b"])["active"] is not None)
        b = lease(dreamers["b"])
        assert b["state"] == "standby" and b["active"].endswith(f":{dreamers['a'].proc.pid}")
        assert health_of(dreamers["b"])[0] == 200  # standing by is healthy
        assert "standby for dreamstream:default:, active: " in dreamers["b"].log.read_text()
        front = start_server(tmp_path / "front", CONFIG, ["--queue", redis.url, "--role", "front"])
        for text, user in (("pizza", "ann"), ("daisy", "bob"), ("lemon", "cat"), ("daisy", "dan")):
            assert ask(front, text, user)[0] == 200
        assert until(lambda: frames_flow(front))
        before = until(lambda: (s := front.get_json("/api/state"))["target"]["label"] == "pizza" and s)

        dreamers["a"].proc.kill()  # the active one dies
        dreamers["a"].proc.wait()
        assert until(lambda: lease(dreamers["b"])["state"] == "active", timeout=15)
        assert lease(dreamers["b"])["generation"] == 2
        assert until(lambda: frames_flow(front), timeout=15)  # the picture is back at the door...
        assert "going on from the stream's last frame" in dreamers["b"].log.read_text()  # ...from a's last frame
        after = front.get_json("/api/state")
        assert queue_of(after) == queue_of(before)  # nothing lost or played twice
        assert after["target"]["remaining_s"] <= before["target"]["remaining_s"]  # its time went on

        dreamers["a"] = start_server(tmp_path / "a-again", CONFIG, role)  # back, as the standby
        assert until(lambda: lease(dreamers["a"])["active"] is not None)
        assert lease(dreamers["a"])["state"] == "standby"

        dreamers["b"].proc.send_signal(signal.SIGSTOP)  # the active one paused past its lease
        try:
            assert until(lambda: lease(dreamers["a"])["state"] == "active", timeout=15)
            assert until(lambda: frames_flow(front), timeout=15)
        finally:
            dreamers["b"].proc.send_signal(signal.SIGCONT)
        # back, it finds the lease gone and stands by; the new active one keeps the stream
        assert until(lambda: lease(dreamers["b"])["state"] == "standby", timeout=15)
        # its health says standby the moment its lease is past (the clock), the log a moment later
        assert until(lambda: "lost (paused or cut off" in dreamers["b"].log.read_text(), timeout=5)
        assert lease(dreamers["a"]) | {"takeovers": 1} == {"state": "active", "generation": 3, "takeovers": 1,
                                                          "active": lease(dreamers["a"])["active"]}
        assert frames_flow(front)
        assert queue_of(front.get_json("/api/state")) == queue_of(before)

        rc, _ = stop_server(dreamers["a"])  # a clean stop hands over at once
        assert rc == 0
        assert until(lambda: lease(dreamers["b"])["state"] == "active", timeout=10)
        assert until(lambda: frames_flow(front), timeout=15)
        assert json.loads(front.get("/healthz")[2])["ok"]
        assert queue_of(front.get_json("/api/state")) == queue_of(before)
    finally:
        for s in [*dreamers.values(), front]:
            if s is not None and s.proc.poll() is None:
                stop_server(s)
        redis.kill()


def test_redis_restarted_during_a_hold_keeps_one_active_dreamer_and_the_queue(tmp_path):
    redis = RedisServer(tmp_path).start()
    dreamers, front = [], None
    try:
        for name in ("a", "b", "front"):
            (tmp_path / name).mkdir()
        role = ["--queue", redis.url, "--role", "dreamer"]
        dreamers.append(start_server(tmp_path / "a", CONFIG, role))
        assert until(lambda: lease(dreamers[0])["state"] == "active")
        dreamers.append(start_server(tmp_path / "b", CONFIG, role))
        front = start_server(tmp_path / "front", CONFIG, ["--queue", redis.url, "--role", "front"])
        for text, user in (("pizza", "ann"), ("daisy", "bob")):
            assert ask(front, text, user)[0] == 200
        before = until(lambda: (s := front.get_json("/api/state"))["target"]["label"] == "pizza" and s)

        redis.kill()  # back at once (its appendonly file): shorter than the lease, nothing changes hands
        redis.start()
        assert until(lambda: frames_flow(front), timeout=15)
        assert lease(dreamers[0])["state"] == "active" and lease(dreamers[0])["generation"] == 1

        redis.kill()  # gone for longer than the lease: the active dreamer stops, one of the two goes on
        time.sleep(4)
        redis.start()
        assert until(lambda: frames_flow(front), timeout=20)
        states = until(lambda: sorted(s["state"] for s in map(lease, dreamers)) == ["active", "standby"]
                       and [lease(d) for d in dreamers])
        assert max(s["generation"] for s in states) == 2
        assert queue_of(front.get_json("/api/state")) == queue_of(before)
    finally:
        for s in [*dreamers, front]:
            if s is not None and s.proc.poll() is None:
                stop_server(s)
        redis.kill()
