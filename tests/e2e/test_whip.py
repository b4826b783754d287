"""The live source from a WHIP publisher (POST /whip) against a real `serve --source whip`: a
WHIP client in Python (aiortc, a synthetic moving picture) publishes, the shown picture
follows it; stop and publish again; a second publisher is a 409; a wrong token, a broken
offer, an offer without video are refused and change nothing."""
import asyncio
import fractions
import json
import time
import urllib.error
import urllib.request

import aiohttp
import av
import cv2
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

from .conftest import TEST_CONFIG, start_server, stop_server

TOKEN = "s3cret-whip-token"


class Colour(VideoStreamTrack):
    """320x180 at 30 fps of one colour (set from outside), a white bar moving across it."""

    def __init__(self, rgb=(255, 0, 0)):
        super().__init__()
        self.rgb, self.n = rgb, 0

    async def recv(self):
        await asyncio.sleep(1 / 30)
        picture = np.empty((180, 320, 3), np.uint8)
        picture[:] = self.rgb
        picture[:, (self.n * 4) % 300:(self.n * 4) % 300 + 20] = 255
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = self.n * 3000, fractions.Fraction(1, 90000)
        self.n += 1
        return frame


class Publisher:
    """A WHIP client: offers `track` in `codec` (H.264, as OBS does, or VP8) and silence (as
    OBS sends audio) to /whip."""

    def __init__(self, base: str, token: str | None = TOKEN, audio: bool = True, codec: str = "H264"):
        self.base, self.token, self.audio, self.codec = base, token, audio, codec
        self.track, self.pc, self.location = Colour(), RTCPeerConnection(), None

    async def start(self) -> tuple[int, str]:
        """(the HTTP status, its body): 201 and the answer once connected."""
        from aiortc.mediastreams import AudioStreamTrack
        video = self.pc.addTransceiver(self.track, direction="sendonly")
        video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                   if c.mimeType in (f"video/{self.codec}", "video/rtx")])
        if self.audio:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        async with aiohttp.ClientSession() as session:
            async with session.post(self.base + "/whip", data=self.pc.localDescription.sdp, headers=headers) as r:
                status, body = r.status, await r.text()
                self.location = r.headers.get("Location")
        if status == 201:
            assert f"{self.codec}/90000" in body
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status, body

    async def stop(self, delete: bool = True) -> int | None:
        status = None
        if delete:
            async with aiohttp.ClientSession() as session:
                async with session.delete(self.base + self.location,
                                          headers={"Authorization": f"Bearer {self.token}"}) as r:
                    status = r.status
        await self.pc.close()
        return status


def shown_colour(server) -> np.ndarray:
    jpeg = server.get("/frame.jpg")[2]
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.median(rgb.reshape(-1, 3), axis=0)


async def until(check, timeout: float = 30.0):
    """Polls `check` (run in a thread: it may read the server) until it is true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("whip"), TEST_CONFIG + "[source]\ninput = \"whip\"\nmix = 0.0\n"
                     "[webrtc]\nconnect_timeout_s = 5.0\n", env={"DREAMSTREAM_WHIP_TOKEN": TOKEN})
    yield s
    stop_server(s)
    assert TOKEN not in s.log.read_text()  # never logged


def source(server) -> dict:
    return server.get_json("/api/state")["source"]


def test_before_a_publisher_the_stream_waits_and_is_healthy(server):
    state = source(server)
    assert state["input"] == "whip" and state["state"] == "waiting" and state["ok"]
    assert json.loads(server.get("/healthz")[2])["ok"]
    assert server.get("/frame.jpg")[0] == 200


def test_the_shown_picture_follows_the_publisher_then_goes_on_without_it(server):
    async def run():
        pub = Publisher(server.base)
        status, answer = await pub.start()
        assert status == 201 and pub.location.startswith("/whip/"), answer
        await until(lambda: source(server)["state"] == "running" and source(server)["fps"] > 5)
        await until(lambda: (c := shown_colour(server))[0] > 150 and c[2] < 80)  # red
        pub.track.rgb = (0, 0, 255)
        await until(lambda: (c := shown_colour(server))[2] > 150 and c[0] < 80)  # blue
        assert source(server)["size"] == [320, 180]
        assert await pub.stop() == 200
        await until(lambda: source(server)["state"] == "waiting")
        await asyncio.sleep(1.5)  # the stream goes on with the last picture, still flowing
        assert shown_colour(server)[2] > 150
        assert server.get_json("/api/state")["fps"]["output"] > 5  # shown again and again, not frozen
        assert json.loads(server.get("/healthz")[2])["ok"]

        again = Publisher(server.base, codec="VP8")  # the next publisher is taken at once, VP8 as well
        again.track.rgb = (0, 255, 0)
        assert (await again.start())[0] == 201
        await until(lambda: (c := shown_colour(server))[1] > 150 and c[0] < 80)
        await again.stop(delete=False)  # gone without a word: its connection closes
        await until(lambda: source(server)["state"] == "waiting", timeout=45)
    asyncio.run(run())


def test_a_second_publisher_while_one_is_live_is_409(server):
    async def run():
        first, second = Publisher(server.base), Publisher(server.base)
        assert (await first.start())[0] == 201
        await until(lambda: source(server)["state"] == "running")
        status, body = await second.start()
        assert status == 409 and "already live" in body
        await second.stop(delete=False)
        await asyncio.sleep(0.5)
        assert source(server)["state"] == "running"  # the first one is untouched
        assert await first.stop() == 200
    asyncio.run(run())


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_publisher_without_the_token_is_401(server, token):
    async def run():
        pub = Publisher(server.base, token)
        got, body = await pub.start()
        await pub.stop(delete=False)
        return got, body
    status, body = asyncio.run(run())
    assert status == 401 and "Bearer" in body and "wrong" not in body
    assert source(server)["state"] == "waiting"


@pytest.mark.parametrize("body, status", [
    (b"not sdp at all", 400),
    (b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400),  # no video
    (b"v=0\r\n" + b"a=x\r\n" * 20000, 413),
])
def test_a_broken_offer_is_refused_and_changes_nothing(server, body, status):
    req = urllib.request.Request(server.base + "/whip", data=body, method="POST",
                                 headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == status, refused.value.read()
    assert source(server)["state"] == "waiting"


def test_an_offer_that_sends_no_video_is_400(server):
    async def run():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")  # a viewer's offer, sent to the publisher's door
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base + "/whip", data=pc.localDescription.sdp,
                                    headers={"Content-Type": "application/sdp",
                                             "Authorization": f"Bearer {TOKEN}"}) as r:
                status, text = r.status, await r.text()
        await pc.close()
        return status, text
    status, text = asyncio.run(run())
    assert status == 400 and "no video" in text
    assert source(server)["state"] == "waiting"


def test_guessing_the_token_is_slowed_down(server):
    """Last in this module: it leaves this address unable to publish for a while."""
    statuses = []
    for _ in range(6):
        req = urllib.request.Request(server.base + "/whip", data=b"v=0\r\n", method="POST",
                                     headers={"Content-Type": "application/sdp", "Authorization": "Bearer guess"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        statuses.append(refused.value.code)
        if refused.value.code == 429:
            assert 0 < int(refused.value.headers["Retry-After"]) <= 10
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}
