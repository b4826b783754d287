"""Watching over WebRTC (POST /whep) against a real `serve`: a WHEP client in Python (aiortc, as
any player would be) receives the dream as H.264 and decodes it; two viewers share one
encode; a broken offer is a 400 and changes nothing; DELETE ends a viewer."""
import asyncio
import hashlib
import json
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from .conftest import TEST_CONFIG, start_server, stop_server


async def watch(base: str, frames: int = 8, leave: bool = True, audio: bool = False):
    """A WHEP viewer: (the first `frames` pictures' digests, the peer's Location)."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if audio:  # as many players offer: answered, never sent
        pc.addTransceiver("audio", direction="recvonly")
    got, done = [], asyncio.Event()

    @pc.on("track")
    def on_track(track):
        if track.kind != "video":
            return

        async def read():
            while len(got) < frames:
                picture = (await track.recv()).to_ndarray(format="rgb24")
                got.append((picture.shape, hashlib.md5(picture.tobytes()).hexdigest()))
            done.set()
        asyncio.ensure_future(read())
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/whep", data=pc.localDescription.sdp,
                                headers={"Content-Type": "application/sdp", "Origin": "https://player.example"}) as r:
            assert r.status == 201, await r.text()
            assert r.headers["Access-Control-Allow-Origin"] == "*" and r.content_type == "application/sdp"
            location, answer = r.headers["Location"], await r.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert "H264" in answer and "VP8" not in answer  # the one encode's codec, nothing else
        await asyncio.wait_for(done.wait(), 30)
        if leave:
            async with session.delete(base + location) as r:
                assert r.status == 200
            async with session.delete(base + location) as r:
                assert r.status == 404  # gone once
    await pc.close()
    return got, location


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("webrtc"), TEST_CONFIG + "[webrtc]\nconnect_timeout_s = 3.0\n")
    yield s
    stop_server(s)


def test_a_whep_viewer_receives_the_dream_as_h264(server):
    got, location = asyncio.run(watch(server.base, audio=True))
    assert len(got) == 8 and got[0][0] == (96, 160, 3) and location.startswith("/whep/")
    health = json.loads(server.get("/healthz")[2])
    assert health["webrtc"] == {"peers": 0, "dropped": 0}


def test_two_viewers_share_one_encode(server):
    """The same packets: the two decode the very same pictures (an encode each would make
    pictures of their own, the dream moving all the time)."""
    async def both():
        return await asyncio.gather(watch(server.base, 40), watch(server.base, 40))
    (a, _), (b, _) = asyncio.run(both())
    assert len({d for _, d in a} & {d for _, d in b}) >= 10


def test_offers_at_once_cannot_pass_the_cap_per_address(server):
    """Six offers from one address at the same moment: four (max_per_ip) answered, two 503."""
    async def offers():
        pcs = [RTCPeerConnection() for _ in range(6)]
        for pc in pcs:
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            async def post(pc):
                async with session.post(server.base + "/whep", data=pc.localDescription.sdp,
                                        headers={"Content-Type": "application/sdp"}) as r:
                    return r.status, r.headers.get("Location")
            answers = await asyncio.gather(*(post(pc) for pc in pcs))
            for _, location in answers:
                if location:
                    async with session.delete(server.base + location) as r:
                        assert r.status == 200
        for pc in pcs:
            await pc.close()
        return sorted(status for status, _ in answers)
    assert asyncio.run(offers()) == [201] * 4 + [503] * 2
    assert json.loads(server.get("/healthz")[2])["webrtc"]["peers"] == 0


@pytest.mark.parametrize("body, content_type, status", [
    (b"not sdp at all", "application/sdp", 400),
    (b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "application/sdp", 400),  # no video
    (b"v=0", "text/plain", 415),
    (b"v=0\r\n" + b"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 3 + b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
     "application/sdp", 400),  # a transport for each line: refused before any
    (b"v=0\r\n" + b"a=x\r\n" * 20000, "application/sdp", 413),
])
def test_a_broken_offer_is_refused_and_changes_nothing(server, body, content_type, status):
    req = urllib.request.Request(server.base + "/whep", data=body, method="POST",
                                 headers={"Content-Type": content_type})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == status, refused.value.read()
    assert json.loads(server.get("/healthz")[2])["webrtc"]["peers"] == 0


def metric(server, name: str) -> float:
    for line in server.get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_viewer_that_never_connects_is_dropped_and_counted(server):
    async def offer_and_vanish():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base + "/whep", data=pc.localDescription.sdp,
                                    headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 201
        await pc.close()  # the answer never set: no ICE, no DTLS
    dropped = json.loads(server.get("/healthz")[2])["webrtc"]["dropped"]
    asyncio.run(offer_and_vanish())
    assert json.loads(server.get("/healthz")[2])["webrtc"]["peers"] == 1
    deadline = time.monotonic() + 10
    while (webrtc := json.loads(server.get("/healthz")[2])["webrtc"])["peers"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert webrtc["dropped"] == dropped + 1
