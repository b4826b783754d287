"""Real `serve --queue redis://...` processes on one real redis-server: two that share one queue,
whichever door a viewer uses; Redis lost and back; Redis unreachable at start; a front door
without a model showing a dreamer's picture (`--role front` / `--role dreamer`)."""
import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from peers import NGINX, REDIS_SERVER, RedisServer, start_nginx_fronts, stop
from websockets.asyncio.client import connect

from .conftest import TEST_CONFIG, Server, free_port, start_server, stop_server

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
        assert until(lambda: [q["label"] for q in a.get_json("/api/state")["queue"]] == ["daisy"])  # within a tick
        with urllib.request.urlopen(a.base + "/stream.mjpg", timeout=10) as watching:  # a viewer at a...
            watching.read(1000)
            assert until(lambda: b.get_json("/api/state")["viewers"] == 1)  # ...counted at b too

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


@pytest.mark.skipif(NGINX is None, reason="needs Debian nginx (make test installs it as root)")
def test_front_doors_without_a_model_behind_nginx_serve_the_dreamers_picture_and_take_its_requests(tmp_path):
    """One dreamer, two front doors and the README's nginx recipe (configs/nginx-fronts.conf) in
    front of them: what a viewer meets at nginx's address is the dreamer's picture and queue."""
    redis = RedisServer(tmp_path).start()
    dreamer, fronts, nginx = None, [], None
    config = CONFIG.replace("[serve]", '[serve]\ntrusted_proxies = ["127.0.0.1"]', 1)
    try:
        for name in ("dreamer", "front-1", "front-2"):
            (tmp_path / name).mkdir()
        dreamer = start_server(tmp_path / "dreamer", config, ["--queue", redis.url, "--role", "dreamer"])
        fronts = [start_server(tmp_path / name, config, ["--queue", redis.url, "--role", "front"])
                  for name in ("front-1", "front-2")]
        assert "front door: no model" in fronts[0].log.read_text()
        assert "libtorch" not in Path(f"/proc/{fronts[0].proc.pid}/maps").read_text()  # nor the libraries
        http, ws = free_port(), free_port()
        nginx = start_nginx_fronts(tmp_path, http, ws, [(port_of(f.base), port_of(f.ws)) for f in fronts])
        door = Server(nginx, f"http://127.0.0.1:{http}", f"ws://127.0.0.1:{ws}/", tmp_path / "nginx-fronts.log")

        status, ack = ask(door, "pizza", "ann")
        assert status == 200 and ack["position"] == 0
        assert until(lambda: dreamer.get_json("/api/state")["target"]["label"] == "pizza")
        for path in ("/", "/view", "/stream.mjpg", "/static/app.js"):  # the viewers' are the front doors'
            with pytest.raises(urllib.error.HTTPError) as e:
                dreamer.get(path)
            assert e.value.code == 404, path
        with pytest.raises(urllib.error.HTTPError) as e:  # requests too
            urllib.request.urlopen(urllib.request.Request(dreamer.base + "/api/request", data=b'{"text": "daisy"}',
                                                          headers={"Content-Type": "application/json"}), timeout=10)
        assert e.value.code == 404
        assert "no viewer page: the front doors serve it" in dreamer.log.read_text()
        assert asyncio.run(ask_ws(door.ws, "daisy"))["position"] == 1  # the websocket through nginx too
        status, headers, jpeg = door.get("/frame.jpg")
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and frame.shape == (96, 160, 3)
        for front in fronts:  # the dreamer's figures, at each door
            state = until(lambda: (s := front.get_json("/api/state"))["fps"]["dream"] > 0 and s["queue"] and s)
            assert state["device"] == "remote" and [q["label"] for q in state["queue"]] == ["daisy"]
        with urllib.request.urlopen(door.base + "/stream.mjpg", timeout=10) as r:
            parts = sum(r.read(4096).count(b"--dreamframe") for _ in range(40))
        assert parts >= 2
        status, _, metrics = fronts[1].get("/metrics")
        assert status == 200 and b"dreamstream_frames_total" in metrics
        dreamer.proc.kill()  # the picture stops: the front doors say so, and keep answering
        dreamer.proc.wait()
        assert until(lambda: health_of(fronts[0])[0] == 503, timeout=15)
        status, ack = ask(door, "lemon", "cat")
        assert status == 200 and ack["position"] == 2  # requests are still taken, for the next dreamer
        assert door.get_json("/api/state")["target"]["label"] == "pizza"
    finally:
        if nginx is not None:
            stop(nginx)
        stopped = [stop_server(f)[0] for f in fronts if f.proc.poll() is None]
        if dreamer is not None and dreamer.proc.poll() is None:
            stop_server(dreamer)
        redis.kill()
    assert stopped == [0, 0]
    for front in fronts:
        log = front.log.read_text()
        assert "Traceback" not in log and " ERROR " not in log, log


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


async def ask_ws(url: str, text: str) -> dict:
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "request", "text": text, "user": "bob"}))
        while (reply := json.loads(await ws.recv()))["type"] != "ack":
            assert reply["type"] != "error", reply
        return reply


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


def test_the_strip_of_recent_dreams_is_every_doors_and_outlives_a_restart(tmp_path):
    redis = RedisServer(tmp_path).start()
    dreamer = front = None
    short = TEST_CONFIG.replace("cooldown_s = 0.5", "cooldown_s = 0.0")  # holds of 4 s
    try:
        for name in ("dreamer", "front", "front-again"):
            (tmp_path / name).mkdir()
        dreamer = start_server(tmp_path / "dreamer", short, ["--queue", redis.url, "--role", "dreamer",
                                                             "--clips", str(tmp_path / "clips")])
        front = start_server(tmp_path / "front", short, ["--queue", redis.url, "--role", "front"])
        status, ack = ask(front, "pizza", "ann")
        assert status == 200
        recent = until(lambda: [r for r in front.get_json("/api/state")["recent"] if r["id"] == ack["id"]], 20)
        assert recent[0]["label"] == "pizza" and recent[0]["user"] == "ann" and recent[0]["clip"] is None
        status, headers, thumb = front.get(recent[0]["thumb"])
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        # its clip: linked where it is served (the dreamer), not at a front door, where it would be a 404
        def linked():
            return [r for r in dreamer.get_json("/api/state")["recent"] if r["id"] == ack["id"] and r["clip"]]
        assert until(linked, 30)
        time.sleep(2.5)  # the front door has read the strip again (every 2 s) since the clip was linked
        assert [r["clip"] for r in front.get_json("/api/state")["recent"] if r["id"] == ack["id"]] == [None]
        stop_server(front)
        front = start_server(tmp_path / "front-again", short, ["--queue", redis.url, "--role", "front"])
        assert any(r["id"] == ack["id"] for r in front.get_json("/api/state")["recent"])  # kept in Redis
    finally:
        for s in (dreamer, front):
            if s is not None and s.proc.poll() is None:
                stop_server(s)
        redis.kill()
