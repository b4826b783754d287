"""The WHIP source's reader (stream/inputs/whip.py) and its door (stream/front/whip.py), with
publishers in this process over loopback; tests/e2e/test_whip.py publishes into a real serve."""
import asyncio
import time

import av
import numpy as np
import pytest

from stream.core.framebus import FrameBus
from stream.front.whep import OfferRefused
from stream.front.whip import Whip
from stream.inputs.source import SourceError, open_input, parse_source
from stream.inputs.whip import WhipReader


def frame(w: int, h: int, rgb=(200, 30, 30)) -> av.VideoFrame:
    picture = np.empty((h, w, 3), np.uint8)
    picture[:] = rgb
    picture[:, : w // 10] = 0  # a black band at the left edge: cropped away from a wider picture
    return av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")


@pytest.fixture
def reader():
    r = WhipReader(FrameBus(encode=False), (160, 90), fps=20.0)
    r.start()
    yield r
    r.stop()


def test_whip_is_a_source_only_serve_takes():
    spec = parse_source("whip")
    assert (spec.kind, spec.shown) == ("whip", "whip")
    with pytest.raises(SourceError) as e:
        open_input(spec)
    assert "serve" in str(e.value)
    assert parse_source("./whip").kind == "file"


def test_before_a_publisher_it_shows_the_waiting_picture_again_and_again(reader):
    first = reader.out.wait(0, timeout=2)
    later = reader.out.wait(first.seq, timeout=2)
    assert later is not None and np.array_equal(first.rgb, later.rgb)
    assert first.rgb.shape == (90, 160, 3) and 100 < first.rgb.mean() < 155  # mid-grey
    health = reader.health()
    assert health["state"] == "waiting" and health["frame_age_s"] is None and health["fps"] == 0.0


def test_a_publishers_frame_is_cropped_and_scaled_to_the_output(reader):
    reader.connected("198.51.100.7")
    seq = reader.out.latest().seq if reader.out.latest() else 0
    reader.hand(frame(1920, 1080))
    shown = reader.out.wait(seq, timeout=2)
    while shown is not None and shown.rgb[45, 80, 0] < 150:
        shown = reader.out.wait(shown.seq, timeout=2)  # past the waiting picture
    assert shown.rgb.shape == (90, 160, 3)
    assert abs(int(shown.rgb[45, 80, 0]) - 200) < 12 and shown.rgb[45, 2, 0] < 30  # the band kept at 16:9
    reader.hand(frame(2560, 800))  # wider than 16:9: the sides cropped, the band with them
    while shown is not None and shown.rgb[45, 2, 0] < 150:
        shown = reader.out.wait(shown.seq, timeout=2)
    assert shown.rgb.shape == (90, 160, 3)
    health = reader.health()
    assert health["state"] == "running" and health["size"] == [2560, 800] and health["frame_age_s"] < 1
    reader.left("gone")
    assert reader.health()["state"] == "waiting"


def test_only_the_newest_handed_frame_is_shown(reader):
    reader.stop()  # nothing takes frames now
    reader.hand(frame(320, 180, (255, 0, 0)))
    reader.hand(frame(320, 180, (0, 0, 255)))
    assert reader._handed.to_ndarray(format="rgb24")[90, 160, 2] > 200


def test_the_token_is_a_bearer_token_compared_whole():
    whip = Whip(reader=None, token="t0ken", connect_timeout_s=5, ice=[])
    whip.authorize("Bearer t0ken", "198.51.100.7")
    whip.authorize("bearer  t0ken ", "198.51.100.7")
    for n, header in enumerate((None, "", "t0ken", "Basic t0ken", "Bearer t0ke", "Bearer t0ken2", "Bearer")):
        with pytest.raises(OfferRefused) as e:
            whip.authorize(header, f"198.51.100.{n}")  # an address each: none of them throttled
        assert e.value.status == 401 and "t0ken" not in e.value.message
    Whip(reader=None, token="", connect_timeout_s=5, ice=[]).authorize(None, "198.51.100.7")  # no token set: anyone


def test_an_address_guessing_tokens_is_slowed_to_one_guess_in_10_s():
    whip = Whip(reader=None, token="t0ken", connect_timeout_s=5, ice=[])
    for _ in range(5):
        with pytest.raises(OfferRefused) as e:
            whip.authorize("Bearer guess", "203.0.113.9")
        assert e.value.status == 401
    with pytest.raises(OfferRefused) as e:
        whip.authorize("Bearer t0ken", "203.0.113.9")  # even the right one, until its budget is back
    assert e.value.status == 429 and 0 < e.value.retry_after_s <= 10
    whip.authorize("Bearer t0ken", "198.51.100.7")  # another address is not slowed
    whip._misses["203.0.113.9"].last -= 10  # ten seconds later: one more guess
    whip.authorize("Bearer t0ken", "203.0.113.9")
    with pytest.raises(OfferRefused):
        whip.authorize("Bearer guess", "203.0.113.9")
    with pytest.raises(OfferRefused) as e:
        whip.authorize("Bearer guess", "203.0.113.9")
    assert e.value.status == 429


def offer_of(mangle=lambda sdp: sdp) -> str:
    from aiortc import RTCPeerConnection

    async def make():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()
        return mangle(pc.localDescription.sdp)
    return asyncio.run(make())


def refusal(whip: Whip, sdp: str) -> OfferRefused:
    with pytest.raises(OfferRefused) as e:
        asyncio.run(whip.offer(sdp, "198.51.100.7"))
    assert whip.peer is None
    return e.value


def test_video_in_a_codec_it_cannot_decode_is_400():
    av1 = offer_of(lambda sdp: sdp.replace("VP8/90000", "AV1/90000").replace("H264/90000", "AV1/90000"))
    e = refusal(Whip(WhipReader(FrameBus(encode=False), (160, 90)), "", 5, []), av1)
    assert e.status == 400 and "H.264 or VP8" in e.message


def test_a_standby_dreamer_takes_no_publisher():
    class Standby:
        def held(self) -> bool:
            return False
    whip = Whip(WhipReader(FrameBus(encode=False), (160, 90)), "", 5, [])
    whip.gate = Standby()
    e = refusal(whip, offer_of())
    assert e.status == 503 and "stands by" in e.message


class Publisher:
    """An aiortc publisher of a plain moving picture, answered by `whip` in this process."""

    def __init__(self, whip: Whip):
        from aiortc import RTCPeerConnection, VideoStreamTrack
        self.whip, self.pc = whip, RTCPeerConnection()
        self.pc.addTransceiver(VideoStreamTrack(), direction="sendonly")

    async def offer(self) -> str:
        from aiortc import RTCSessionDescription
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer, peer = await self.whip.offer(self.pc.localDescription.sdp, "198.51.100.7")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return peer


async def until(check, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.05)


async def quiet_publisher_slow_to_close(whip: Whip):
    """A connected publisher of `whip` (its reader not started: handed frames wait), quiet for
    10 s so that it may be replaced, whose connection takes 1 s to close (a TURN allocation to
    give back): the Publisher and the server's side of it."""
    first = Publisher(whip)
    await first.offer()
    await until(lambda: whip.reader.publisher is not None)
    old = whip.peer[1]
    close = old.close

    async def slow_close():
        await asyncio.sleep(1.0)
        await close()
    old.close = slow_close
    whip._since -= 10
    return first, old


def test_offers_while_a_quiet_publisher_is_replaced_make_one_publisher_not_two():
    """A quiet publisher slow to close (a TURN allocation to give back): of two offers during
    that close one is answered and the other is a 409; nothing is left connected at the end."""
    async def run():
        whip = Whip(WhipReader(FrameBus(encode=False), (160, 90)), "", 5, [])
        first, old = await quiet_publisher_slow_to_close(whip)
        b, c = Publisher(whip), Publisher(whip)

        async def later():
            await asyncio.sleep(0.5)  # while b's offer waits for the old publisher to close
            return await c.offer()
        got = await asyncio.gather(b.offer(), later(), return_exceptions=True)
        statuses = sorted(g.status if isinstance(g, OfferRefused) else 201 for g in got)
        live = whip.peer[1]
        await whip.close_all()
        for p in (first, b, c):
            await p.pc.close()
        return statuses, old.connectionState, live.connectionState, whip.peer
    assert asyncio.run(run()) == ([201, 409], "closed", "closed", None)


def test_the_publisher_is_let_go_when_it_goes_quiet_or_the_lease_is_lost():
    class Lease:
        held_now = True

        def held(self) -> bool:
            return self.held_now

    async def run():
        reader = WhipReader(FrameBus(encode=False), (160, 90))
        whip, lease = Whip(reader, "", 5, []), Lease()
        whip.gate = lease
        publisher = Publisher(whip)
        await publisher.offer()
        await until(lambda: reader.publisher is not None)
        assert reader.health()["frame_age_s"] < 1  # counted from the connection until a frame arrives
        reader.received_at = time.monotonic()
        lease.held_now = False  # this dreamer lost the stream: OBS must go to the active one
        await until(lambda: whip.peer is None, timeout=3)
        assert reader.health()["state"] == "waiting"
        lease.held_now = True
        await publisher.pc.close()

        again = Publisher(whip)
        await again.offer()
        await until(lambda: reader.publisher is not None)
        whip._since = reader.received_at = reader.connected_at = time.monotonic() - 10.5  # its network dropped
        await until(lambda: whip.peer is None, timeout=3)
        await again.pc.close()
        return reader.health()["state"]
    assert asyncio.run(run()) == "waiting"


def test_a_publisher_that_never_connects_is_dropped_at_connect_timeout_s():
    async def run():
        reader = WhipReader(FrameBus(encode=False), (160, 90))
        whip = Whip(reader, "", 1.0, [])
        from aiortc import RTCPeerConnection, VideoStreamTrack
        silent = RTCPeerConnection()  # offers, and never takes the answer: it never connects
        silent.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await silent.setLocalDescription(await silent.createOffer())
        await whip.offer(silent.localDescription.sdp, "198.51.100.7")
        await until(lambda: whip.peer is None, timeout=5)  # its own timeout (1 s), not the 10 s of silence
        await silent.close()
    asyncio.run(run())


def test_an_offer_replacing_a_publisher_while_the_server_stops_leaves_nothing_live():
    async def run():
        whip = Whip(WhipReader(FrameBus(encode=False), (160, 90)), "", 5, [])
        first, _ = await quiet_publisher_slow_to_close(whip)
        second = Publisher(whip)
        offer = asyncio.ensure_future(second.offer())
        await asyncio.sleep(0.5)  # the offer waits for the old publisher to close...
        await whip.close_all()  # ...when the server stops
        refused = await asyncio.gather(offer, return_exceptions=True)
        await first.pc.close()
        await second.pc.close()
        return refused[0], whip.peer, whip._tasks
    refused, peer, tasks = asyncio.run(run())
    assert isinstance(refused, OfferRefused) and refused.status == 503 and peer is None and not tasks
