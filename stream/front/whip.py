"""WHIP: OBS (or any WHIP client) publishes the live source (`serve --source whip`).

`POST /whip` takes the publisher's SDP offer (H.264 or VP8 video, audio accepted and left
unplayed) and answers 201 with the answer and a Location to DELETE; no trickle ICE (the
answer carries every candidate, a PATCH is 405). One publisher at a time: a second while one
is live is a 409, unless the live one has sent nothing for REPLACE_S (OBS reconnecting after
its network dropped, before `_watch` lets the old one go). The live publisher is let go when
it has not connected within `connect_timeout_s`, has sent nothing for SOURCE_STALL_S once
connected, or this dreamer lost the stream's lease. When `[source] whip_token` (or
DREAMSTREAM_WHIP_TOKEN) is set, POST and DELETE need `Authorization: Bearer TOKEN`: 401
otherwise, and 429 for a while after MISS_BURST wrong ones from one address; the token is
compared in constant time and never logged.

The peer runs on the event loop; each decoded video frame is handed to the WhipReader
(stream/inputs/whip.py), which keeps the newest and publishes it from its own thread.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import math
import secrets
import time

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from ..core.gate import ALWAYS
from ..core.token_bucket import TokenBucket
from ..spine.health import SOURCE_STALL_S
from .whep import OfferRefused, check_media, one_line

log = logging.getLogger(__name__)

REPLACE_S = 5.0  # a live publisher quiet this long may be replaced by a new one
MISS_BURST, MISS_EVERY_S = 5, 10.0  # wrong tokens an address may send at once, and then one this often
MAX_MISSING = 4096  # addresses whose wrong tokens are remembered
WATCH_S = 0.5  # how often the live publisher is looked at (connected? sending? still ours to take?)


class Whip:
    """The one WHIP publisher of the live source."""

    def __init__(self, reader, token: str, connect_timeout_s: float, ice: list):
        """`reader`: the WhipReader; `token`: "" lets anyone publish; `ice`: RTCIceServers."""
        self.reader, self.token, self.connect_timeout_s, self.ice = reader, token, connect_timeout_s, ice
        self.gate = ALWAYS  # a standby dreamer's lease: no publisher unless it is the active one
        self.peer: tuple[str, RTCPeerConnection] | None = None
        self.closing = False
        self._since = 0.0  # when the live publisher was answered
        self._answering = False  # an offer is being answered: it alone may become the publisher
        self._tasks: set[asyncio.Task] = set()  # the live publisher's: its frames, its audio, its watch
        self._misses: dict[str, TokenBucket] = {}  # wrong tokens, by address
        self._closed: asyncio.Future | None = None  # the last publisher's connection closing

    def authorize(self, authorization: str | None, address: str) -> None:
        """OfferRefused(401) unless the header carries the token (or none is set); 429 for an
        address that sent MISS_BURST wrong ones, until its budget is back (one each MISS_EVERY_S),
        so that a token cannot be guessed at the speed of the network."""
        if not self.token:
            return
        now = time.monotonic()
        misses = self._misses.get(address)
        if misses is not None and (wait := math.ceil(misses.wait(now))) > 0:
            raise OfferRefused(429, f"too many wrong tokens from this address: try again in {wait} s", wait)
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            if misses is None:
                if len(self._misses) >= MAX_MISSING:  # a flood from many addresses: the first half forgotten
                    for old in list(self._misses)[:MAX_MISSING // 2]:
                        del self._misses[old]
                misses = self._misses[address] = TokenBucket(1 / MISS_EVERY_S, MISS_BURST, now)
            misses.take(now)
            raise OfferRefused(401, "publishing here needs the stream's token: Authorization: Bearer TOKEN "
                                    "(OBS: Settings, Stream, Bearer Token)")

    async def offer(self, sdp: str, address: str) -> tuple[str, str]:
        """The answer's SDP and the publisher's id; OfferRefused with the HTTP status and why.
        One offer is answered at a time, until it is the publisher: another meanwhile is a 409."""
        if self.closing:
            raise OfferRefused(503, "the server is stopping")
        if not self.gate.held():
            raise OfferRefused(503, "this dreamer stands by: publish to the active one (/healthz says which)")
        if self._answering or (self.peer is not None and not self._quiet()):
            raise OfferRefused(409, "a publisher is already live here: stop it first (DELETE its Location)")
        check_media(sdp)
        self._answering = True
        try:
            pc = await self._answer(sdp)
            try:
                if self.peer is not None:
                    await self.close(self.peer[0], "replaced: it had sent nothing for a while")
                if self.closing:  # checked after the last wait: close_all may have run meanwhile
                    raise OfferRefused(503, "the server is stopping")
            except BaseException:  # refused, or cancelled (the server stopping): nothing left open
                await pc.close()
                raise
            peer = secrets.token_urlsafe(12)
            self.peer, self._since = (peer, pc), time.monotonic()
        finally:
            self._answering = False

        @pc.on("connectionstatechange")
        async def changed() -> None:
            if pc.connectionState == "connected" and self._live(peer):
                self.reader.connected(address)
            elif pc.connectionState in ("failed", "closed"):
                await self.close(peer, "its connection " + pc.connectionState)
        for t in pc.getTransceivers():  # their tracks were announced while answering
            if t.currentDirection == "recvonly":
                self._task(self._receive(t.receiver.track, self.reader.hand) if t.kind == "video"
                           else self._receive(t.receiver.track))
        self._task(self._watch(peer))
        return pc.localDescription.sdp, peer

    async def _answer(self, sdp: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            video = [t for t in pc.getTransceivers() if t.kind == "video"]
            if not video or video[0].currentDirection != "recvonly":
                raise ValueError("it sends no video")
        except Exception as e:  # aiortc raises what it meets in the offer (ValueError, KeyError, ...)
            await pc.close()
            raise OfferRefused(400, "not an SDP offer of H.264 or VP8 video this server can receive "
                                    f"({one_line(e)})") from None
        except BaseException:  # cancelled (the server stopping)
            await pc.close()
            raise
        return pc

    def _task(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _live(self, peer: str) -> bool:
        return self.peer is not None and self.peer[0] == peer

    def _quiet(self) -> bool:
        """The live publisher has sent nothing for REPLACE_S (counted from its answer until its first frame)."""
        heard = max(self._since, self.reader.received_at or 0.0)
        return time.monotonic() - heard > REPLACE_S

    @staticmethod
    async def _receive(track, hand=lambda frame: None) -> None:
        """Each frame of `track` to `hand`; audio is received and dropped (aiortc queues every
        decoded frame until someone takes it). Ends with the track (its peer closed)."""
        try:
            while True:
                hand(await track.recv())
        except MediaStreamError:
            pass

    async def _watch(self, peer: str) -> None:
        """Closes the publisher when it has not connected within connect_timeout_s, when it
        has sent nothing for SOURCE_STALL_S (its network dropped: ICE would take ~30 s to say
        so), or when this dreamer lost the stream's lease (OBS then reconnects, to the active one)."""
        while True:
            await asyncio.sleep(WATCH_S)
            if not self._live(peer):
                return
            now, connected = time.monotonic(), self.peer[1].connectionState == "connected"
            if not self.gate.held():
                why = "this dreamer stands by now"
            elif not connected and now - self._since > self.connect_timeout_s:
                why = f"not connected within {self.connect_timeout_s:g} s"
            elif connected and now - self.reader.heard_at() > SOURCE_STALL_S:
                why = f"it sent nothing for {SOURCE_STALL_S:g} s"
            else:
                continue
            await self.close(peer, why)

    async def close(self, peer: str, why: str) -> bool:
        """Ends publisher `peer` (its tasks, its connection); False when it is not the live one.
        Only the live publisher has tasks: an offer becomes the publisher before it starts any."""
        if not self._live(peer):
            return False
        pc, self.peer = self.peer[1], None
        self.reader.left(why)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._closed = asyncio.ensure_future(pc.close())  # awaited by close_all too, if it comes meanwhile
        await asyncio.shield(self._closed)
        return True

    async def close_all(self) -> None:
        """At shutdown: no new publisher from now on, the live one closed (or the one closing, done)."""
        self.closing = True
        if self.peer is not None:
            await self.close(self.peer[0], "the server is stopping")
        if self._closed is not None:
            await self._closed
