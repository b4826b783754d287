"""One queue for several processes, through a real redis-server: each `RequestQueue` here stands
for a process of its own (its own monotonic clock, one wall clock for all), as `serve --queue`
builds it."""
import asyncio
import signal
import time

import pytest
import redis
from loadtest import free_port
from peers import REDIS_SERVER, RedisServer

from dreamer.classes import RequestError
from stream.queue.requests import QueuePolicy, RequestQueue
from stream.queue.shared import QueueUnreachable, RedisShared, shown_url

pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="needs Debian redis-server (make test installs it as root)")
PREFIX = "dreamstream:test:"


class Clocks:
    """One moment, read by each process's monotonic clock (its own zero) and the wall clock."""

    def __init__(self):
        self.t = 0.0

    def mono(self, zero: float):
        return lambda: self.t + zero

    def wall(self):
        return self.t + 1.8e9


@pytest.fixture
def server(tmp_path):
    s = RedisServer(tmp_path).start()
    yield s
    s.kill()


def door(server, clocks, zero, **policy):
    """A process's queue on the shared state."""
    return RequestQueue(QueuePolicy(**{"hold_s": 20.0, "cooldown_s": 0.0, **policy}), ["volcano", "jellyfish"],
                        clocks.mono(zero), wall=clocks.wall, shared=RedisShared(server.url, PREFIX))


def test_a_request_at_one_door_is_in_the_queue_at_every_door_and_votes_add_up(server):
    clocks = Clocks()
    a, b = door(server, clocks, 100.0), door(server, clocks, 5000.0)
    assert a.submit("pizza", "ann", "ip-a").position == 0  # nobody asked before: plays at once
    assert b.current().label == "pizza"
    assert b.submit("daisy", "bob", "ip-b").position == 1
    assert a.submit("lemon", "cat", "ip-c").position == 2
    assert b.submit("lemons", "dan", "ip-d").position == 1  # a vote moves it up, whichever door
    for q in (a, b):
        snap = q.snapshot()
        assert snap["target"]["label"] == "pizza" and snap["target"]["user"] == "ann"
        assert [(e["label"], e["votes"]) for e in snap["queue"]] == [("lemon", 2), ("daisy", 1)]
    assert a.snapshot()["queue"] == b.snapshot()["queue"]


def test_a_hold_ends_once_whichever_process_notices(server):
    clocks = Clocks()
    a, b = door(server, clocks, 100.0), door(server, clocks, 5000.0)
    a.submit("pizza", "ann", "ip-a")
    b.submit("daisy", "bob", "ip-b")
    b.submit("lemon", "cat", "ip-c")
    clocks.t += 12
    assert a.snapshot()["target"]["remaining_s"] == b.snapshot()["target"]["remaining_s"] == 8.0
    clocks.t += 8
    assert a.current().label == "daisy"
    assert b.current().label == "daisy"  # not lemon: the hold ended once, for both
    assert b.snapshot()["target"]["id"] == a.snapshot()["target"]["id"]
    version = b.version
    clocks.t += 20
    assert a.current().label == "lemon"
    b.snapshot()
    assert b.version > version  # another process's change is a change here: the state is pushed


def test_a_change_that_lands_first_elsewhere_is_kept_and_the_call_runs_again_on_it(server, monkeypatch):
    clocks = Clocks()
    a, b = door(server, clocks, 100.0), door(server, clocks, 5000.0)
    a.submit("pizza", "ann", "ip-a")
    sort, raced = a._sort, []

    def race():  # between a's read and its write, another process queues daisy
        if not raced:
            raced.append(b.submit("daisy", "bob", "ip-b"))
        sort()
    monkeypatch.setattr(a, "_sort", race)
    assert a.submit("lemon", "cat", "ip-c").position == 2  # its first try lost: run again after daisy
    assert [q["label"] for q in b.snapshot()["queue"]] == ["daisy", "lemon"]


def test_a_connection_lost_at_exec_is_not_taken_for_a_conflict(server, monkeypatch):
    """EXEC may have run when its reply is lost: the call is refused, never run a second time."""
    clocks = Clocks()
    a = door(server, clocks, 100.0)
    for text, user in (("pizza", "ann"), ("daisy", "bob"), ("lemon", "cat")):
        a.submit(text, user, f"ip-{user}")
    execute = redis.client.Pipeline.execute

    def reply_lost(pipe, *args, **kw):
        exec_sent = pipe.explicit_transaction  # after MULTI: this is the EXEC
        result = execute(pipe, *args, **kw)
        if exec_sent:
            monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
            raise redis.WatchError("A ConnectionError occurred on while watching one or more keys")
        return result
    monkeypatch.setattr(redis.client.Pipeline, "execute", reply_lost)
    with pytest.raises(RequestError) as e:
        a.skip()
    assert e.value.code == "unavailable"
    a.shared._retry_at = 0.0  # past the backoff
    assert a.current().label == "daisy" and [q["label"] for q in a.snapshot()["queue"]] == ["lemon"]


def test_a_write_redis_refuses_leaves_nothing_behind(server):
    clocks = Clocks()
    a = door(server, clocks, 100.0)
    a.submit("pizza", "ann", "ip-a")
    a.submit("daisy", "bob", "ip-b")
    admin = redis.Redis(port=server.port)
    admin.config_set("maxmemory", 1)  # every write refused (OOM), reads go on
    try:
        with pytest.raises(RequestError):
            a.skip()
        assert a.snapshot()["target"]["label"] == "pizza"  # not daisy: the skip did not happen
    finally:
        admin.config_set("maxmemory", 0)
    a.shared._retry_at = 0.0
    assert a.current().label == "pizza" and [q["label"] for q in a.snapshot()["queue"]] == ["daisy"]


def test_a_sender_spread_over_two_doors_is_one_sender(server):
    clocks = Clocks()
    a = door(server, clocks, 100.0, attempt_burst=3, attempts_per_s=0.01, cooldown_s=3.0)
    b = door(server, clocks, 5000.0, attempt_burst=3, attempts_per_s=0.01, cooldown_s=3.0)
    a.submit("pizza", "ann", "203.0.113.9")
    with pytest.raises(RequestError) as e:  # the cooldown holds at the other door
        b.submit("daisy", "ann", "203.0.113.9")
    assert e.value.code == "rate_limited"
    b.attempt("203.0.113.9")  # the third of three attempts, at either door
    with pytest.raises(RequestError) as e:
        a.attempt("203.0.113.9")
    assert e.value.code == "rate_limited"
    b.attempt("198.51.100.7")  # someone else is not limited
    assert [q["label"] for q in a.snapshot()["queue"]] == []  # the refused one was never queued


def test_redis_lost_refuses_requests_keeps_the_picture_and_comes_back_with_what_was_acknowledged(server):
    clocks = Clocks()
    a = door(server, clocks, 100.0)
    a.submit("pizza", "ann", "ip-a")
    a.submit("daisy", "bob", "ip-b")
    server.kill()
    with pytest.raises(RequestError) as e:
        a.submit("lemon", "cat", "ip-c")
    assert e.value.code == "unavailable" and not a.shared.available
    assert a.current().label == "pizza"  # the dream goes on with what it had
    clocks.t += 20
    assert a.current().label == "pizza"  # no hold ends on a state nobody can write
    server.start()  # the same folder: its appendonly file
    deadline = time.monotonic() + 10
    while True:  # it is tried again after a short backoff
        try:
            ack = a.submit("lemon", "cat", "ip-c")
            break
        except RequestError as e:
            assert e.code == "unavailable" and time.monotonic() < deadline
            time.sleep(0.1)
    assert a.shared.available and ack.position == 2  # daisy was kept through the restart
    assert a.current().label == "daisy"  # and the overdue hold ends now
    assert [q["label"] for q in a.snapshot()["queue"]] == ["lemon"]


def test_unreachable_or_refused_at_start_is_one_line_without_the_password(tmp_path):
    port = free_port()
    with pytest.raises(QueueUnreachable) as e:
        RedisShared(f"redis://127.0.0.1:{port}/0", PREFIX)
    assert str(e.value).startswith(f"--queue redis://127.0.0.1:{port}/0: ")
    locked = RedisServer(tmp_path, password="s3cret-pw").start()
    try:
        with pytest.raises(QueueUnreachable) as e:
            RedisShared(f"redis://:wrong-pw@127.0.0.1:{locked.port}/0", PREFIX)
        assert "wrong-pw" not in str(e.value) and f"redis://****@127.0.0.1:{locked.port}/0" in str(e.value)
        RedisShared(locked.url, PREFIX).client.ping()
    finally:
        locked.kill()


def test_the_password_may_come_from_the_environment(tmp_path, monkeypatch):
    locked = RedisServer(tmp_path, password="from-env").start()
    try:
        monkeypatch.setenv("REDIS_PASSWORD", "from-env")
        shared = RedisShared(f"redis://127.0.0.1:{locked.port}/0", PREFIX)
        assert shared.shown == f"redis://127.0.0.1:{locked.port}/0"
    finally:
        locked.kill()


def test_a_kept_state_this_code_cannot_read_is_refused_at_start_and_fresh_moves_it_aside(server):
    client = redis.Redis(port=server.port)
    client.set(PREFIX + "queue", b'{"current": 1}')
    with pytest.raises(QueueUnreachable) as e:
        door(server, Clocks(), 0.0)
    assert "--fresh" in str(e.value)
    shared = RedisShared(server.url, PREFIX)
    moved = shared.move_aside()
    assert moved.startswith(PREFIX + "queue.old-") and client.get(moved) == b'{"current": 1}'
    assert door(server, Clocks(), 0.0).current().label == "volcano"
    assert shared.move_aside() is not None  # the new state moved aside too, under another name
    assert len(client.keys(PREFIX + "queue.old-*")) == 2


def test_urls_are_shown_without_secrets():
    assert shown_url("redis://user:pw@cache.example:6380/2?ssl_cert_reqs=none") == "redis://****@cache.example:6380/2"
    assert shown_url("rediss://cache.example/0") == "rediss://cache.example/0"
    for password in ("s3cr/et", "ab#cd", "q?uery", "a@b"):  # an unescaped / ? # @ in a generated password
        assert password not in shown_url(f"redis://:{password}@cache.example:6379/0")


@pytest.mark.parametrize("password", ["s3cr/et", "ab#cd", "q?uery"])
def test_a_url_redis_cannot_read_is_one_line_without_the_password(password):
    with pytest.raises(QueueUnreachable) as e:
        RedisShared(f"redis://:{password}@127.0.0.1:{free_port()}/0", PREFIX)
    assert password not in str(e.value) and str(e.value).startswith("--queue redis://****@127.0.0.1:")


def test_viewers_at_every_process_add_up_and_one_that_went_silent_drops_out(server):
    a, b = RedisShared(server.url, PREFIX), RedisShared(server.url, PREFIX)
    assert a.viewers(3, now=100.0) == 3
    assert b.viewers(2, now=101.0) == 5
    assert a.viewers(1, now=102.0) == 3
    assert a.viewers(1, now=112.0) == 1  # b has said nothing for 11 s: killed, say
    b.viewers(4, now=113.0)
    b.leave()  # a clean stop
    assert a.viewers(1, now=114.0) == 1
    server.kill()
    assert a.viewers(1) is None  # unreachable: the caller keeps its last sum


def test_the_recent_strip_is_kept_once_whichever_process_says_so_and_holds_the_newest_eight(server):
    a, b = RedisShared(server.url, PREFIX), RedisShared(server.url, PREFIX)
    assert a.load_recent() == []
    a.add_recent("r1", "pizza", "ann", b"jpeg-a")
    b.add_recent("r1", "pizza", "ann", b"jpeg-b")  # the same dream ended, seen by another process
    b.set_clip("r1", "/clips/pizza.mp4")
    assert b.load_recent() == [{"id": "r1", "label": "pizza", "user": "ann", "clip": "/clips/pizza.mp4",
                                "jpeg": b"jpeg-a"}]
    for i in range(2, 11):
        b.add_recent(f"r{i}", "daisy", None, b"x")
    assert [r["id"] for r in a.load_recent()] == [f"r{i}" for i in range(10, 2, -1)]  # newest first, eight
    assert redis.Redis(port=server.port).hlen(PREFIX + "recent:items") == 8  # the dropped ones' thumbnails too
    server.kill()
    assert a.load_recent() is None  # unreachable: the caller keeps the strip it has
    a.add_recent("r11", "lemon", None, b"x")  # not kept, and no error


def test_a_request_waiting_on_a_hung_redis_leaves_the_event_loop_free(server):
    """Redis hung (SIGSTOP) holds a request up to the client's timeout. It waits off the event
    loop, so the page, /healthz and every websocket are answered meanwhile."""
    from stream.front.service import About, Service
    from stream.relay.remote import RemotePipeline

    queue = RequestQueue(QueuePolicy(cooldown_s=0.0), ["volcano"], shared=RedisShared(server.url, PREFIX))
    service = Service(RemotePipeline(queue, client=None, prefix=PREFIX), About("lite0", "cpu", (64, 36)))

    async def ask_while_hung():
        ticks = []

        async def tick():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)
        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        server.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(RequestError) as refused:
                await service.request("pizza", "ann", "ip-a")
            end = time.monotonic()
        finally:
            server.proc.send_signal(signal.SIGCONT)
            ticker.cancel()
        return refused.value.code, [t for t in ticks if start < t < end]
    code, ticked_meanwhile = asyncio.run(ask_while_hung())
    assert code == "unavailable" and ticked_meanwhile
