"""Real `serve --queue redis://...` processes on one real redis-server: two that share one queue,
whichever door a viewer uses; Redis lost and back; Redis unreachable at start; a front door
without a model showing a dreamer's picture (`--role front` / `--role dreamer`)."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from peers import REDIS_SERVER, RedisServer

from .conftest import TEST_CONFIG, free_port, start_server, stop_server

pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="needs Debian redis-server (make test installs it as root)")
CONFIG = TEST_CONFIG.replace("hold_s = 4.0", "hold_s = 120.0").replace("cooldown_s = 0.5", "cooldown_s = 0.0")


def until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def ask(server, text, user):
    return server.post("/api/request", json.dumps({"text": text, "user": user}).encode())


def test_two_serves_share_one_queue_and_refuse_while_redis_is_gone(tmp_path):
    redis = RedisServer(tmp_path).start()
    a = b = None
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        a = start_server(tmp_path / "a", CONFIG, ["--queue", redis.url])
        b = start_server(tmp_path / "b", CONFIG, ["--queue", redis.url])
        assert "the queue is shared in redis://127.0.0.1" in a.log.read_text()
        status, ack = ask(a, "pizza", "ann")
        assert status == 200 and ack["position"] == 0
        assert until(lambda: b.get_json("/api/state")["target"]["label"] == "pizza")
        status, ack = ask(b, "daisy", "bob")
        assert status == 200 and ack["position"] == 1
        assert [q["label"] for q in a.get_json("/api/state")["queue"]] == ["daisy"]

        redis.kill()
        status, body = ask(a, "lemon", "cat")
        assert status == 503 and body["code"] == "unavailable", body
        status, health = health_of(a)  # said, not failed: the picture flows
        assert status == 200 and health["queue"] == "unavailable"
        assert a.get_json("/api/state")["target"]["label"] == "pizza"  # from what was read last

        redis.start()  # its appendonly file: what was acknowledged is there
        status, ack = until(lambda: (r := ask(a, "lemon", "cat"))[0] == 200 and r, timeout=15)
        assert ack["position"] == 2
        state = until(lambda: len((s := b.get_json("/api/state"))["queue"]) == 2 and s)  # b, after its own backoff
        assert state["target"]["label"] == "pizza" and [q["label"] for q in state["queue"]] == ["daisy", "lemon"]
        status, health = health_of(a)
        assert status == 200 and health["queue"] == "ok"
    finally:
        for s in (a, b):
            if s is not None:
                stop_server(s)
        redis.kill()


def health_of(server):
    """/healthz's status and body (it answers 503 while Redis is lost)."""
    try:
        status, _, body = server.get("/healthz")
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    return status, json.loads(body)


def test_redis_unreachable_at_start_is_one_line_and_exit_2(tmp_path):
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "stream", "serve", "--device", "cpu", "--queue",
                           f"redis://:hunter2@127.0.0.1:{port}/0", "--port", str(free_port()),
                           "--ws-port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"dreamstream: error: --queue redis://****@127.0.0.1:{port}/0: ")
    assert "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "not a url"])
def test_a_queue_url_that_is_not_redis_is_refused(url):
    done = subprocess.run([sys.executable, "-m", "stream", "serve", "--device", "cpu", "--queue", url,
                           "--port", str(free_port()), "--ws-port", str(free_port())],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "queue.url: a Redis URL" in done.stderr, done.stderr


def test_a_front_door_without_a_model_serves_the_dreamers_picture_and_takes_its_requests(tmp_path):
    redis = RedisServer(tmp_path).start()
    dreamer = front = None
    try:
        for name in ("dreamer", "front"):
            (tmp_path / name).mkdir()
        dreamer = start_server(tmp_path / "dreamer", CONFIG, ["--queue", redis.url, "--role", "dreamer"])
        front = start_server(tmp_path / "front", CONFIG, ["--queue", redis.url, "--role", "front"])
        assert "front door: no model" in front.log.read_text()
        status, ack = ask(front, "pizza", "ann")
        assert status == 200 and ack["position"] == 0
        assert until(lambda: dreamer.get_json("/api/state")["target"]["label"] == "pizza")
        status, headers, jpeg = front.get("/frame.jpg")
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and frame.shape == (96, 160, 3)
        state = until(lambda: (s := front.get_json("/api/state"))["fps"]["dream"] > 0 and s)  # the dreamer's figures
        assert state["device"] == "remote" and state["target"]["label"] == "pizza"
        with urllib.request.urlopen(front.base + "/stream.mjpg", timeout=10) as r:
            parts = sum(r.read(4096).count(b"--dreamframe") for _ in range(40))
        assert parts >= 2
        dreamer.proc.kill()  # the picture stops: the front door says so, and keeps answering
        dreamer.proc.wait()
        assert until(lambda: health_of(front)[0] == 503, timeout=15)
        assert front.get_json("/api/state")["target"]["label"] == "pizza"
    finally:
        for s in (dreamer, front):
            if s is not None and s.proc.poll() is None:
                stop_server(s)
        redis.kill()


@pytest.mark.parametrize("extra, says", [
    (["--role", "front"], "--role front shares the queue and the picture through Redis"),
    (["--role", "dreamer"], "--role dreamer shares the queue and the picture through Redis"),
    (["--role", "front", "--queue", "redis://127.0.0.1:1/0", "--rtmp", "rtmp://127.0.0.1/live/x"],
     "--role front serves viewers only"),
])
def test_a_role_without_what_it_needs_is_one_line(extra, says):
    done = subprocess.run([sys.executable, "-m", "stream", "serve", "--device", "cpu", *extra,
                           "--port", str(free_port()), "--ws-port", str(free_port())],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
