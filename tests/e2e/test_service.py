"""The live service end to end: a real server process, real HTTP and websocket clients."""
import asyncio
import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import av
import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def read_mjpeg_parts(base: str, n: int, timeout: float = 30, until=None):
    """Read up to n parts from /stream.mjpg with a plain HTTP client; return (headers, jpeg) pairs.

    With `until(parts)`, stop as soon as it is true.
    """
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200
    ctype = resp.getheader("Content-Type")
    assert ctype.startswith("multipart/x-mixed-replace; boundary=")
    boundary = ctype.split("boundary=")[1].encode()
    parts = []
    while len(parts) < n:
        line = resp.readline().strip()
        if not line:
            continue
        assert line == b"--" + boundary
        headers = {}
        while (h := resp.readline().strip()):
            k, v = h.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = resp.read(int(headers["content-length"]))
        parts.append((headers, body))
        if until is not None and until(parts):
            break
    conn.close()
    return parts


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_mjpeg_frames_flow_and_change(server):
    # Right after start the second dreamed frame may still be warming up, so read on (up to
    # ~20 s at 25 fps) until the picture changes rather than assume a few parts suffice.
    parts = read_mjpeg_parts(server.base, 500, timeout=30,
                             until=lambda ps: len(ps) >= 4 and ps[-1][1] != ps[0][1])
    for headers, body in parts:
        assert headers["content-type"] == "image/jpeg"
        assert decode(body).shape == (96, 160, 3)
    assert len(parts) < 500
    assert not np.array_equal(decode(parts[0][1]), decode(parts[-1][1]))


def test_http_routes(server):
    status, headers, body = server.get("/")
    assert status == 200 and b"<img id=\"stream\"" in body
    status, headers, body = server.get("/frame.jpg")
    assert headers["Content-Type"] == "image/jpeg" and decode(body).shape == (96, 160, 3)
    health = server.get_json("/healthz")
    assert health["ok"] is True and health["frame_age_s"] < 10
    cfg = server.get_json("/config.json")
    assert cfg["size"] == [160, 96] and cfg["model"] == "efficientnet_lite0" and cfg["ws_port"] and cfg["ask"] == ""
    metrics = server.get("/metrics")[2].decode()
    for name in ("dreamstream_frames_total", "dreamstream_dream_steps_total", "dreamstream_fps",
                 "dreamstream_viewers", "dreamstream_requests_total", "dreamstream_encoder_restarts_total"):
        assert name in metrics
    state = server.get_json("/api/state")
    assert set(state) >= {"target", "queue", "fps", "size", "model", "device", "viewers", "uptime_s"}
    classes = server.get_json("/api/classes?q=volcanos")
    assert classes["matches"][0]["index"] == 980
    unknown = server.get_json("/api/classes?q=qqxxzz")
    assert unknown["error"] == "unknown_class" and unknown["suggestions"]
    mix = server.get_json("/api/classes?q=pizza%20%2B%20volcano")  # understood: nothing else to suggest
    assert [m["index"] for m in mix["matches"]] == [963, 980] and mix["suggestions"] == []
    shared = server.get_json("/api/classes?q=missile")  # read as the rocket; the other one offered first
    assert shared["matches"][0]["index"] == 657 and shared["suggestions"][0] == "missile (projectile)"


def test_post_request_and_its_errors(server):
    time.sleep(0.6)
    status, ack = server.post("/api/request", json.dumps({"text": "Jellyfishes", "user": "ann"}).encode())
    assert status == 200 and ack["type"] == "ack" and ack["target"]["classes"][0]["index"] == 107
    state = server.get_json("/api/state")
    labels = [state["target"]["label"]] + [q["label"] for q in state["queue"]]
    assert "jellyfish" in labels
    status, err = server.post("/api/request", json.dumps({"text": "pizza"}).encode())
    assert status == 429 and err["code"] == "rate_limited"
    time.sleep(0.6)
    for body, code in [(b"{broken", "bad_request"), (b"[1, 2]", "bad_request"),
                       (json.dumps({"text": "qqxxzz"}).encode(), "unknown_class"),
                       (json.dumps({"text": "x" * 300}).encode(), "too_long"),
                       (json.dumps({"text": ""}).encode(), "bad_request"),
                       (b"x" * 2_000_000, "too_long")]:
        time.sleep(0.6)
        status, err = server.post("/api/request", body)
        assert status == 400 and err["type"] == "error" and err["code"] == code, (body[:20], err)
    assert server.get_json("/healthz")["ok"]


def post_raw(base: str, body: bytes, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(base + "/api/request", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_deeply_nested_json_is_a_bad_request_not_a_crash(server):
    deep = b"[" * 3000 + b"]" * 3000  # under the 4 KiB body limit, past Python's recursion limit
    status, err = post_raw(server.base, deep[:4000], {"Content-Type": "application/json"})
    assert status == 400 and err["code"] == "bad_request"

    async def run():
        async with connect(server.ws) as ws:
            await ws.send("[" * 2000 + "]" * 2000)
            assert (await _recv_type(ws, "error"))["code"] == "bad_request"
    asyncio.run(run())


def test_cross_site_posts_are_refused_and_names_never_show_an_address(server):
    body = json.dumps({"text": "daisy"}).encode()
    for headers, want in [({"Content-Type": "text/plain"}, 415),  # what a cross-site fetch may send unasked
                          ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
                          ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
                          ({"Content-Type": "application/json", "Origin": "null"}, 403)]:
        status, err = post_raw(server.base, body, headers)
        assert status == want and err["type"] == "error", (headers, err)
    assert "daisy" not in json.dumps(server.get_json("/api/state"))
    time.sleep(0.6)
    status, ack = post_raw(server.base, json.dumps({"text": "daisy", "user": ""}).encode(),
                           {"Content-Type": "application/json", "Origin": server.base})
    assert status == 200, ack
    time.sleep(0.6)
    status, ack = server.post("/api/request", json.dumps({"text": "goldfish", "user": "a\udc80b‮"}).encode())
    assert status == 200, ack
    state = json.dumps(server.get_json("/api/state"))
    assert "127.0.0.1" not in state and "anonymous" in state and '"ab"' in state


async def _recv_type(ws, kind, timeout=10):
    end = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, end - time.monotonic())))
        if msg["type"] == kind:
            return msg


def test_websocket_request_changes_state(server):
    async def run():
        await asyncio.sleep(0.6)
        async with connect(server.ws) as ws:
            first = await _recv_type(ws, "state")
            assert first["size"] == [160, 96]
            await ws.send(json.dumps({"type": "request", "text": "pizza + volcano", "user": "bob"}))
            ack = await _recv_type(ws, "ack")
            assert ack["target"]["label"] == "pizza + volcano" and ack["position"] >= 0
            await ws.send(json.dumps({"type": "ping"}))
            assert (await _recv_type(ws, "pong"))["type"] == "pong"
            for _ in range(10):  # a state push follows the change
                state = await _recv_type(ws, "state")
                labels = [state["target"]["label"]] + [q["label"] for q in state["queue"]]
                if "pizza + volcano" in labels:
                    break
            else:
                pytest.fail("state never showed the request")
    asyncio.run(run())
    state = server.get_json("/api/state")
    assert "pizza + volcano" in [state["target"]["label"]] + [q["label"] for q in state["queue"]]


def test_websocket_bad_inputs_get_errors_and_server_keeps_serving(server):
    async def run():
        async with connect(server.ws) as ws:
            await ws.send("{not json")
            assert (await _recv_type(ws, "error"))["code"] == "bad_request"
            await ws.send(json.dumps(["a list"]))
            assert (await _recv_type(ws, "error"))["code"] == "bad_request"
            await ws.send(json.dumps({"type": "nonsense"}))
            assert (await _recv_type(ws, "error"))["code"] == "bad_request"
            await ws.send(b"\x00\x01binary")
            assert (await _recv_type(ws, "error"))["code"] == "bad_request"
            await asyncio.sleep(0.6)
            await ws.send(json.dumps({"type": "request", "text": "qqxxzz"}))
            err = await _recv_type(ws, "error")
            assert err["code"] == "unknown_class" and err["suggestions"]
            # a flood: refused, then the connection is closed (1008); nothing else is hurt
            await asyncio.sleep(0.6)
            for _ in range(40):
                await ws.send(json.dumps({"type": "request", "text": "daisy"}))
            replies = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if m["type"] in ("ack", "error"):
                        replies.append(m.get("code", "ack"))
            assert closed.value.rcvd.code == 1008
            assert replies[0] == "ack" and replies.count("rate_limited") >= 15, replies
        # a 1 MB message closes that connection with 1009 (too big)...
        async with connect(server.ws, max_size=None) as ws:
            await ws.send("x" * 1_000_000)
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(10):
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 1009
        # ...and the server goes on serving everyone else
        async with connect(server.ws) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await _recv_type(ws, "pong"))["type"] == "pong"
    asyncio.run(run())
    assert server.get_json("/healthz")["ok"]


def test_websocket_origin_check_and_per_ip_cap(server):
    async def run():
        with pytest.raises(InvalidStatus) as err:
            async with connect(server.ws, origin="http://evil.example"):
                pass
        assert err.value.response.status_code == 403
        page_origin = server.base
        async with connect(server.ws, origin=page_origin) as ws:  # the page itself is welcome
            await _recv_type(ws, "state")
        held = [await connect(server.ws) for _ in range(6)]
        try:
            with pytest.raises(InvalidStatus) as err:
                async with connect(server.ws):
                    pass
            assert err.value.response.status_code == 429
        finally:
            for ws in held:
                await ws.close()
        await asyncio.sleep(0.3)
        async with connect(server.ws) as ws:  # slots are released
            await _recv_type(ws, "state")
    asyncio.run(run())


def test_vanished_mjpeg_viewers_are_dropped_quietly(server):
    u = urlparse(server.base)
    for _ in range(5):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        resp = conn.getresponse()
        resp.read(2000)
        conn.sock.close()
        conn.close()
    time.sleep(1.5)
    assert server.get_json("/api/state")["viewers"] == 0
    log = server.log.read_text()
    assert "Traceback" not in log and "Error" not in log.replace("dream_errors", "")


def test_half_open_connections_are_dropped_after_the_client_timeout(server):
    """Slowloris: headers that never end, a body that never comes, a connection that says
    nothing. Each is closed by the server once client_timeout_s (3 s here) has passed."""
    port = int(server.base.rsplit(":", 1)[1])
    openers = [b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ", b"",
               b"POST /api/request HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100\r\n\r\n{\"text\": "]
    socks = []
    for opener in openers * 10:
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(opener)
        socks.append((opener, s))
    t0 = time.monotonic()
    for opener, s in socks:
        with s:
            answer = b""
            while chunk := s.recv(4096):  # until the server closes (a timeout here fails the test)
                answer += chunk
            if opener.startswith(b"POST"):
                assert b" 408 " in answer.split(b"\r\n")[0], answer
    assert time.monotonic() - t0 < 10
    assert server.get_json("/healthz")["ok"]


def test_finished_dreams_become_clips_listed_in_the_state_and_linked_from_the_strip(server):
    """--clips: each dream that ends (4-s holds here) leaves its last seconds as an mp4 at the
    output size, encoded from the shown JPEGs (no RTMP)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = server.get_json("/api/state")
        linked = [r for r in state["recent"] if r["clip"]]
        if state["clips"] and linked:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no clip after a minute: {state['clips']} {state['recent']}")
    clip = state["clips"][0]
    assert clip["url"] == f"/clips/{clip['name']}" and clip["seconds"] > 1 and clip["bytes"] > 0
    assert linked[0]["clip"] in [c["url"] for c in state["clips"]]
    status, headers, body = server.get(clip["url"])
    assert status == 200 and headers["Content-Type"] == "video/mp4" and len(body) == clip["bytes"]
    with av.open(io.BytesIO(body)) as c:
        frames = list(c.decode(video=0))
    assert frames and (frames[0].width, frames[0].height) == (160, 96)
    for bad in ("/clips/nope.mp4", "/clips/..%2Fserver.log", "/clips/%2e%2e%2ftest.toml"):
        with pytest.raises(urllib.error.HTTPError) as e:
            server.get(bad)
        assert e.value.code == 404
