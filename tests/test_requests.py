import pytest

from dreamer.classes import RequestError
from stream.core.token_bucket import TokenBucket
from stream.queue.requests import QueuePolicy, RequestQueue


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(**kw):
    clock = Clock()
    q = RequestQueue(QueuePolicy(**kw), ["volcano", "jellyfish"], clock)
    return q, clock


def test_idle_queue_wanders_the_playlist():
    q, clock = make(hold_s=10)
    assert q.current().label == "volcano"
    clock.t += 10
    assert q.current().label == "jellyfish"
    clock.t += 10
    assert q.current().label == "volcano"


def test_first_request_plays_now_then_queue_in_order_after_hold():
    q, clock = make(hold_s=30)
    assert q.submit("pizza", "ann").position == 0
    assert q.current().label == "pizza"
    assert q.submit("daisy", "bob").position == 1
    assert q.submit("lemon", "cat").position == 2
    clock.t += 29
    assert q.current().label == "pizza"
    clock.t += 1
    assert q.current().label == "daisy"
    clock.t += 30
    assert q.current().label == "lemon"
    clock.t += 30
    assert q.current().label in {"volcano", "jellyfish"}  # back to wandering


def test_duplicates_merge_and_votes_move_up():
    q, clock = make()
    q.submit("pizza", "ann")  # plays now
    q.submit("daisy", "bob")
    q.submit("lemon", "cat")
    ack = q.submit("Lemons", "dan")  # same target, other spelling: a vote
    assert ack.position == 1
    snap = q.snapshot()
    assert [e["label"] for e in snap["queue"]] == ["lemon", "daisy"]
    assert snap["queue"][0]["votes"] == 2
    clock.t += 5
    assert q.submit("lemon", "cat").position == 1  # the same user again: no extra vote
    assert q.snapshot()["queue"][0]["votes"] == 2
    assert q.submit("pizza", "eve").position == 0  # asking for what plays now


def test_cooldown_and_burst_per_user():
    q, clock = make(cooldown_s=3, burst=3, window_s=60)
    q.submit("pizza", "ann")
    with pytest.raises(RequestError) as err:
        q.submit("daisy", "ann")
    assert err.value.code == "rate_limited"
    q.submit("daisy", "bob")  # others are not affected
    clock.t += 3
    q.submit("lemon", "ann")
    clock.t += 3
    q.submit("zebra", "ann")
    clock.t += 3
    with pytest.raises(RequestError, match="at most 3"):
        q.submit("tiger", "ann")
    clock.t += 60
    q.submit("tiger", "ann")


def test_bad_requests_change_nothing():
    q, _ = make()
    before = (q.version, q.snapshot())
    for text, code in [("qwzxv", "unknown_class"), ("", "bad_request"), ("x" * 500, "too_long"),
                       (None, "bad_request"), (42, "bad_request")]:
        with pytest.raises(RequestError) as err:
            q.submit(text, "ann")
        assert err.value.code == code
    assert (q.version, q.snapshot()) == before


def test_queue_full():
    q, _ = make(max_queue=2)
    for i, name in enumerate(["pizza", "daisy", "lemon"]):
        q.submit(name, f"u{i}")
    with pytest.raises(RequestError) as err:
        q.submit("zebra", "u9")
    assert err.value.code == "queue_full"


def test_democracy_mode_most_votes_win_and_ballot_clears():
    q, clock = make(mode="democracy", hold_s=10)
    q.submit("pizza", "a")
    q.submit("daisy", "b")
    q.submit("daisy", "c")
    assert q.current().label == "volcano"  # the playlist keeps playing until the vote closes
    clock.t += 10
    assert q.current().label == "daisy"
    assert q.snapshot()["queue"] == []


def test_version_bumps_on_changes():
    q, clock = make(hold_s=5)
    v = q.version
    q.submit("pizza", "a")
    assert q.version > v
    v = q.version
    q.current()
    assert q.version == v
    clock.t += 5
    q.current()
    assert q.version > v


def test_every_attempt_spends_the_budget_before_any_matching():
    q, clock = make(attempts_per_s=1.0, attempt_burst=3, cooldown_s=0)
    for _ in range(3):
        with pytest.raises(RequestError) as err:
            q.submit("qqxxzz", "ann", "1.2.3.4")  # unknown classes count too
        assert err.value.code == "unknown_class"
    with pytest.raises(RequestError) as err:
        q.submit("pizza", "ann", "1.2.3.4")
    assert err.value.code == "rate_limited"
    q.submit("pizza", "bob", "5.6.7.8")  # another sender has its own budget
    clock.t += 1  # one token back a second
    q.submit("daisy", "ann", "1.2.3.4")
    with pytest.raises(RequestError, match="too many requests"):
        q.attempt("1.2.3.4")  # lookups spend from the same budget


def test_idle_senders_are_forgotten():
    from stream.queue.requests import PRUNE_EVERY

    q, clock = make(attempts_per_s=1.0, attempt_burst=5, window_s=60, cooldown_s=0)
    for i in range(PRUNE_EVERY - 1):
        q.attempt(f"10.0.{i // 256}.{i % 256}")
    assert q.senders == PRUNE_EVERY - 1
    clock.t += 61  # past the window and a full refill
    q.attempt("192.0.2.1")  # the sweep runs every PRUNE_EVERY attempts
    assert q.senders == 1


def test_a_token_bucket_spends_saves_up_and_says_how_long_to_wait():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.5  # empty: one token comes in half a second, nothing spent
    assert bucket.take(0.5) == 0.0 and bucket.take(0.5) == 0.5
    assert bucket.take(100.0) == 0.0 and bucket.tokens == 2.0  # saved up to the burst, not beyond


def test_the_first_class_is_not_played_again_by_the_playlist():
    clock = Clock()
    q = RequestQueue(QueuePolicy(hold_s=10), ["volcano", "jellyfish", "pizza"], clock, first="volcano")
    assert q.current().label == "volcano"
    assert q.snapshot()["next"] == "jellyfish"  # not "volcano" (from the playlist) for a second hold
    clock.t += 10
    assert q.current().label == "jellyfish"
    q.submit("pizza", "ann")  # plays now; the playlist's next is pizza, which then follows itself: skipped
    clock.t += 10
    assert q.current().label == "volcano"
    one = RequestQueue(QueuePolicy(hold_s=10), ["volcano"], clock, first="volcano")
    clock.t += 10
    assert one.current().label == "volcano"  # a playlist of one plays it again
