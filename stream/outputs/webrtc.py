"""WebRTC's picture: the shown frames encoded once, as H.264, for every WebRTC viewer.

aiortc encodes once per peer when a track hands it frames; handed encoded packets it only
packetizes them. So one `H264Packets` worker encodes the shown bus at the output rate, only
while somebody watches over WebRTC, and hands each packet to every viewer's `PacketTrack`:
one encode whatever the number of viewers. Constrained baseline (every browser decodes it;
no B-frames), zerolatency, and a keyframe at once when a viewer joins, falls behind or asks
for one in RTCP (PLI or FIR, at most once each KEYFRAME_S a viewer: stream/front/whep.py hands
those to this encoder, as aiortc only packetizes), at most every KEYFRAME_GAP_S in all, else
every KEYFRAME_S.

A viewer that falls behind skips, never buffers: with QUEUED packets waiting its track drops
them and everything up to the next keyframe, which it asks for, and goes on from there.
"""
from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from av.video.frame import PictureType

from ..core.framebus import FrameBus
from ..core.worker import Worker

log = logging.getLogger(__name__)

VIDEO_CLOCK = fractions.Fraction(1, 90000)  # RTP's video clock: packets' times in it need no rescaling
KEYFRAME_S = 2.0
KEYFRAME_GAP_S = 0.5  # keyframes asked for (a viewer joining or behind) come at most this often
QUEUED = 8  # packets waiting for a viewer (a third of a second) before it skips to the next keyframe


class PacketTrack(MediaStreamTrack):
    """One viewer's video: the shared encoder's packets, from a keyframe on."""

    kind = "video"

    def __init__(self, source: H264Packets):
        super().__init__()
        self.source = source
        self.queue: asyncio.Queue[av.Packet] = asyncio.Queue(maxsize=QUEUED)
        self.loop = asyncio.get_running_loop()
        self.waiting_for_key = True
        self.skips = 0  # times this viewer fell behind
        self._asked_at = -KEYFRAME_S  # when this viewer's last keyframe request (PLI, FIR) was passed on
        self._receiving = False  # the encoder hands it packets from its first recv (its DTLS is up)

    def offer(self, packet: av.Packet) -> None:
        """On the event loop: the next packet, or nothing until a keyframe."""
        if self.waiting_for_key and not packet.is_keyframe:
            return
        if self.queue.full():  # behind: what it has not taken is dropped, and it starts again at a keyframe
            while not self.queue.empty():
                self.queue.get_nowait()
            self.waiting_for_key, self.skips = True, self.skips + 1
            self.source.want_keyframe()
            return
        self.waiting_for_key = False
        self.queue.put_nowait(packet)

    def ask_keyframe(self) -> None:
        """The viewer asked for a keyframe in RTCP (PLI, FIR: it lost one's packets): passed on
        to the shared encoder at most once each KEYFRAME_S, so one viewer asking without end
        adds one keyframe in KEYFRAME_S for everyone, not one in KEYFRAME_GAP_S."""
        now = time.monotonic()
        if now - self._asked_at >= KEYFRAME_S:
            self._asked_at = now
            self.source.want_keyframe()

    async def recv(self) -> av.Packet:
        if not self._receiving:
            self._receiving = True
            self.source.add(self)
        return await self.queue.get()

    def stop(self) -> None:
        super().stop()
        self.source.remove(self)


class H264Packets(Worker):
    name = "webrtc-encoder"

    def __init__(self, bus: FrameBus, fps: float, bitrate_k: int):
        super().__init__()
        self.bus, self.fps, self.bitrate_k = bus, fps, bitrate_k
        self.tracks: set[PacketTrack] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._keyframe = threading.Event()
        self._keyframe_at = 0.0
        self.began = time.monotonic()  # the packets' times count from here, across encoder sessions (never back)
        self.frames = 0  # frames encoded (once, for every viewer)
        self.bytes = 0

    def add(self, track: PacketTrack) -> None:
        with self._lock:
            self.tracks.add(track)
        self.want_keyframe()
        self._wake.set()

    def remove(self, track: PacketTrack) -> None:
        with self._lock:
            self.tracks.discard(track)

    def want_keyframe(self) -> None:
        self._keyframe.set()

    def job(self) -> None:
        while not self.stopping:
            if not self.tracks:  # nobody watches over WebRTC: no encoding
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            first = self.bus.wait(0, timeout=0.5)
            if first is not None:
                self._session(first.rgb.shape[1] // 2 * 2, first.rgb.shape[0] // 2 * 2)

    def _session(self, w: int, h: int) -> None:
        """Encode at the output rate until nobody watches, the size changes or we stop."""
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = w, h, "yuv420p"
        codec.time_base, codec.framerate = VIDEO_CLOCK, fractions.Fraction(round(self.fps))
        codec.bit_rate = self.bitrate_k * 1000
        g = max(1, round(KEYFRAME_S * self.fps))
        codec.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline",
                         "x264-params": f"keyint={g}:min-keyint={g}:scenecut=0:bframes=0:repeat-headers=1",
                         "maxrate": f"{self.bitrate_k}k", "bufsize": f"{self.bitrate_k}k", "threads": "1"}
        start, n = time.monotonic(), 0
        while not self.stopping and self.tracks:
            shown = self.bus.latest()
            if shown.rgb.shape[1] // 2 * 2 != w or shown.rgb.shape[0] // 2 * 2 != h:
                return  # a new size: a new encoder
            yuv = cv2.cvtColor(np.ascontiguousarray(shown.rgb[:h, :w]), cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            now = time.monotonic()
            frame.pts, frame.time_base = round((now - self.began) * 90000), VIDEO_CLOCK
            if self._keyframe.is_set() and now - self._keyframe_at >= KEYFRAME_GAP_S:
                self._keyframe.clear()
                self._keyframe_at = now
                frame.pict_type = PictureType.I
            for packet in codec.encode(frame):
                packet.time_base = VIDEO_CLOCK
                self.bytes += packet.size
                self._hand(packet)
            self.frames += 1
            n += 1
            if time.monotonic() - (start + n / self.fps) > 2 / self.fps:  # behind (machine busy): skip, never burst
                start, n = time.monotonic(), 0
            self._stop.wait(max(0.0, start + n / self.fps - time.monotonic()))

    def _hand(self, packet: av.Packet) -> None:
        with self._lock:
            tracks = list(self.tracks)
        for track in tracks:
            try:
                track.loop.call_soon_threadsafe(track.offer, packet)
            except RuntimeError:  # its event loop has closed (shutting down): nobody to hand it to
                self.remove(track)
