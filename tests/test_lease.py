"""One active dreamer per stream (stream/relay/lease.py), through a real redis-server: each
`Lease` here stands for a dreamer process of its own."""
import time

import cv2
import numpy as np
import pytest
import redis
from peers import REDIS_SERVER, RedisServer

from stream.relay import lease as lease_module
from stream.relay.lease import NOBODY, TTL_MS, Lease

pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="needs Debian redis-server (make test installs it as root)")
PREFIX = "dreamstream:test:"


@pytest.fixture
def server(tmp_path):
    s = RedisServer(tmp_path).start()
    yield s
    s.kill()


def dreamer(server, name, dreaming=lambda: True):
    return Lease(redis.Redis(port=server.port), PREFIX, name, dreaming)


def taken(*leases):
    """The first lease is asked for on a Redis that never had one: nobody may take it for one
    TTL (Redis may have lost it from under a holder); then each asks in turn."""
    leases[0]._tick()
    assert not leases[0].held() and leases[0].active == NOBODY
    redis.Redis(port=leases[0].client.connection_pool.connection_kwargs["port"]).delete(PREFIX + "lease")
    for lease in leases:
        lease._tick()


def test_one_dreamer_holds_the_lease_the_other_stands_by_and_only_the_holders_frames_go_out(server):
    a, b = dreamer(server, "box-a:1"), dreamer(server, "box-b:2")
    taken(a, b)
    assert a.held() and a.said() == {"state": "active", "active": "box-a:1", "generation": 1, "takeovers": 1}
    assert not b.held() and b.said()["state"] == "standby" and b.said()["active"] == "box-a:1"
    listener = redis.Redis(port=server.port).pubsub()
    listener.subscribe(PREFIX + "frames")
    assert listener.get_message(timeout=1.0)["type"] == "subscribe"
    assert a.publish(b"frame from a") and not b.publish(b"frame from b")
    assert listener.get_message(timeout=1.0)["data"] == b"frame from a"
    assert listener.get_message(timeout=0.2) is None
    assert a.set_figures(PREFIX + "dreamer", "{}", 5000) and not b.set_figures(PREFIX + "dreamer", "[]", 5000)
    assert redis.Redis(port=server.port).get(PREFIX + "dreamer") == b"{}"


def test_a_paused_active_that_comes_back_is_fenced_off_and_stands_by(server):
    a, b = dreamer(server, "box-a:1"), dreamer(server, "box-b:2")
    taken(a)
    redis.Redis(port=server.port).delete(PREFIX + "lease")  # a's lease ran out while a was paused...
    b._tick()  # ...and b took the stream
    assert b.held() and b.generation == 2
    assert a.held()  # a has not looked yet: by its own clock the lease is still its own
    assert not a.publish(b"a stale frame") and a.fenced == 1  # Redis says otherwise: nothing goes out
    a._tick()
    assert not a.held() and a.said()["state"] == "standby" and a.said()["active"] == "box-b:2"
    assert b.publish(b"b's frame")


def test_held_runs_out_on_the_clock_without_redis(server, monkeypatch):
    """A process paused (SIGSTOP) or cut off past its lease stops before asking anyone."""
    a = dreamer(server, "box-a:1")
    taken(a)
    later = lease_module.now() + TTL_MS / 1000
    monkeypatch.setattr(lease_module, "now", lambda: later)
    assert not a.held() and not a.publish(b"late frame")


def test_redis_that_lost_the_generation_lets_nobody_take_over_for_one_ttl(server):
    """Restarted without its appendonly file: a holder that has not noticed must have stopped
    (held() runs out within the TTL) before anyone else may dream."""
    a, b = dreamer(server, "box-a:1"), dreamer(server, "box-b:2")
    taken(a)
    redis.Redis(port=server.port).flushall()
    b._tick()
    assert not b.held() and b.active == NOBODY
    a._tick()
    assert not a.held()  # its lease is not in Redis: lost, and nobody's to take yet
    ttl = redis.Redis(port=server.port).pttl(PREFIX + "lease")
    assert TTL_MS - 500 < ttl <= TTL_MS


def test_a_stuck_dream_gives_the_lease_to_a_standby(server, monkeypatch):
    dreams = {"a": True}
    a, b = dreamer(server, "box-a:1", lambda: dreams["a"]), dreamer(server, "box-b:2")
    taken(a, b)
    a._tick()
    assert a.held()  # dreaming: renewed
    dreams["a"] = False
    later = lease_module.now() + 31
    monkeypatch.setattr(lease_module, "now", lambda: later)
    a._held_until = later + 1  # as if renewed all along
    a._tick()
    assert not a.held() and redis.Redis(port=server.port).get(PREFIX + "lease") is None
    a._tick()
    b._tick()
    assert b.held() and not a.held()  # a waits its turn: the standby first


def test_a_clean_stop_gives_the_lease_back_and_a_standby_takes_over_from_the_last_frame(server):
    a, b = dreamer(server, "box-a:1"), dreamer(server, "box-b:2")
    a.start()
    assert a.wait_held(5.0)  # after one TTL: a Redis that never had the lease
    b.start()
    picture = np.zeros((36, 64, 3), np.uint8)
    picture[:, 32:] = (250, 10, 10)  # red on the right
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))[1].tobytes()
    deadline = time.monotonic() + 5
    while b.newest != jpeg:  # the standby keeps the newest frame the stream showed
        assert time.monotonic() < deadline
        a.publish(jpeg)
        time.sleep(0.05)
    assert not b.held()
    a.stop()
    assert redis.Redis(port=server.port).get(PREFIX + "lease") is None  # given back...
    assert b.wait_held(TTL_MS / 1000 / 3)  # ...and taken at the standby's next look, not after the TTL
    assert b.generation == 2 and b.takeovers == 1
    shown = b.last_picture()
    assert shown.shape == (36, 64, 3) and shown[18, 50, 0] > 200 and shown[18, 10, 0] < 40
    b.stop()
    assert redis.Redis(port=server.port).get(PREFIX + "lease") is None
