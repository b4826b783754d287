"""WHEP: watch the stream over WebRTC (`POST /whep`, the SDP offer in, 201 with the answer
and a Location to DELETE). No trickle ICE: the answer carries every candidate, so any WHEP
player works (OBS, GStreamer's whepsrc, the page). Anyone may watch, from any origin (CORS
open, as for /frame.jpg in a player); a cap on peers per address and in all answers 503.

Each peer gets a `PacketTrack` of the one shared encoder (stream/outputs/webrtc.py). A peer
that has not connected within `connect_timeout_s` is dropped (a player behind a firewall, or one
that never meant to), and counted; a closed one leaves no task, track or socket behind.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcicetransport import parse_stun_turn_uri

from ..outputs.webrtc import PacketTrack

log = logging.getLogger(__name__)

MAX_SDP = 64 * 1024
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location",
        "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, Authorization"}


async def read_offer(request: web.Request, timeout_s: float) -> str:
    """The offer's SDP, at most MAX_SDP bytes (the app's body limit is a request's 4 kB, and a
    browser's offer is more); OfferRefused when it is not one."""
    if request.content_type != "application/sdp":
        raise OfferRefused(415, "send the SDP offer with Content-Type: application/sdp")
    body = b""

    async def read() -> None:
        nonlocal body
        while len(body) <= MAX_SDP and (chunk := await request.content.read(MAX_SDP + 1 - len(body))):
            body += chunk
    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise OfferRefused(408, "the offer did not arrive in time") from None
    if len(body) > MAX_SDP:
        raise OfferRefused(413, f"an offer of more than {MAX_SDP} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferRefused(400, "the offer is not UTF-8 text") from None


def h264_only() -> list:
    """H.264 (what the shared encoder makes) and its retransmissions: nothing else is answered."""
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]


class Whep:
    """The WebRTC viewers: each an RTCPeerConnection fed by the shared encoder."""

    def __init__(self, encoder, settings):
        """`encoder`: the H264Packets worker; `settings`: [webrtc] (WebrtcSettings). A STUN or
        TURN URL aiortc cannot use is a ValueError here, at start."""
        self.encoder, self.s = encoder, settings
        self.peers: dict[str, tuple[RTCPeerConnection, str]] = {}  # id -> (peer, its address)
        self.dropped = 0  # peers that never connected within connect_timeout_s
        self.closing = False
        self._timers: dict[str, asyncio.Task] = {}  # each peer's connect_timeout_s, cancelled when it closes
        self._pending: Counter[str] = Counter()  # offers being answered, by address: counted in the caps
        self.ice = [ice_server(url) for url in settings.ice_servers]

    async def offer(self, sdp: str, address: str) -> tuple[str, str]:
        """The answer's SDP and the peer's id; OfferRefused with the HTTP status and why. The
        caps count offers still being answered: a burst of offers at once cannot pass them."""
        if self.closing:
            raise OfferRefused(503, "the server is stopping")
        if len(self.peers) + sum(self._pending.values()) >= self.s.max_peers:
            raise OfferRefused(503, f"the stream has its {self.s.max_peers} WebRTC viewers; "
                                    "watch MJPEG at /stream.mjpg")
        if sum(a == address for _, a in self.peers.values()) + self._pending[address] >= self.s.max_per_ip:
            raise OfferRefused(503, f"{self.s.max_per_ip} WebRTC viewers from one address at most")
        check_media(sdp)
        self._pending[address] += 1
        try:
            pc = await self._answer(sdp)
        finally:
            self._pending[address] -= 1
            if not self._pending[address]:
                del self._pending[address]
        if self.closing:
            await pc.close()
            raise OfferRefused(503, "the server is stopping")
        peer = secrets.token_urlsafe(12)
        self.peers[peer] = (pc, address)

        @pc.on("connectionstatechange")
        async def changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.dropped += pc.connectionState == "failed"  # ICE or DTLS gave up: counted as never connected
                await self.close(peer)
        self._timers[peer] = asyncio.create_task(self._unless_connected(peer))
        return pc.localDescription.sdp, peer

    async def _answer(self, sdp: str) -> RTCPeerConnection:
        """A peer answering `sdp` with its own PacketTrack (fed from its first recv on)."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice))
        track = PacketTrack(self.encoder)
        try:
            video = pc.addTransceiver(track, direction="sendonly")
            video.setCodecPreferences(h264_only())
            # A viewer's PLI or FIR (it lost a keyframe's packets): aiortc would ask an encoder
            # of its own, which handed packets bypass; the shared one makes the next a keyframe.
            video.sender._send_keyframe = track.ask_keyframe
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                if video.mid is None:
                    raise ValueError("it asks for no video")
                for other in pc.getTransceivers():  # an audio line: answered, never received (no decoder)
                    if other is not video:
                        other.direction = "inactive"
                await pc.setLocalDescription(await pc.createAnswer())
                if video.currentDirection != "sendonly":
                    raise ValueError(f"its video is {video.currentDirection}, not for receiving")
            except Exception as e:  # aiortc raises what it meets in the offer (ValueError, KeyError, ...)
                why = one_line(e)
                raise OfferRefused(400, f"not an SDP offer of H.264 video this server can answer ({why})") from None
        except BaseException:
            track.stop()
            await pc.close()
            raise
        return pc

    async def _unless_connected(self, peer: str) -> None:
        await asyncio.sleep(self.s.connect_timeout_s)
        entry = self.peers.get(peer)
        if entry is not None and entry[0].connectionState != "connected":
            self.dropped += 1
            log.info("webrtc: a viewer did not connect within %g s: dropped", self.s.connect_timeout_s)
            await self.close(peer)

    async def close(self, peer: str) -> bool:
        entry = self.peers.pop(peer, None)
        if entry is None:
            return False
        timer = self._timers.pop(peer, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        pc = entry[0]
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await pc.close()
        return True

    async def close_all(self) -> None:
        """At shutdown: no new peer from now on, every one closed (the caller bounds the wait)."""
        self.closing = True
        await asyncio.gather(*(self.close(peer) for peer in list(self.peers)), return_exceptions=True)


def one_line(e: Exception) -> str:
    """What aiortc said of an offer, as one short line (its messages may quote the offer)."""
    return " ".join(f"{type(e).__name__}: {e}".split())[:200]


def check_media(sdp: str) -> None:
    """One video line to receive, at most one audio line beside it: each line costs a
    transport (without BUNDLE, sockets of its own), so a long list is refused before any."""
    kinds = [line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")]
    if kinds.count("video") != 1 or kinds.count("audio") != len(kinds) - 1 or len(kinds) > 2:
        raise OfferRefused(400, f"an offer of one video line (and at most one audio line), not {len(kinds)} "
                               f"({', '.join(kinds[:4]) or 'none'})")


def ice_server(url: str) -> RTCIceServer:
    """'stun:HOST:PORT', or 'turn:USER:PASSWORD@HOST:PORT' (turns: for TLS): an RTCIceServer
    with the user and password apart, as aiortc wants them; ValueError for another."""
    scheme, _, rest = url.partition(":")
    username = credential = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        username, _, credential = userinfo.partition(":")
    server = RTCIceServer(urls=f"{scheme}:{rest}", username=username, credential=credential)
    try:
        parse_stun_turn_uri(server.urls)
    except ValueError:
        raise ValueError(f"webrtc.ice_servers: {scheme}:...{rest[-30:]} is not stun:HOST:PORT or "
                         "turn:USER:PASSWORD@HOST:PORT") from None
    if scheme in ("turn", "turns") and not (username and credential):
        raise ValueError(f"webrtc.ice_servers: a TURN server needs turn:USER:PASSWORD@{rest}")
    return server


class OfferRefused(Exception):
    def __init__(self, status: int, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after_s = status, message, retry_after_s
