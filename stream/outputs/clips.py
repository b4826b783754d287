"""Clips: each finished dream's last seconds as an mp4 at the output size, in a folder with a
size cap, linked from the page's recent strip and listed in /api/state.

    clips = Clips(settings, fps=25, nice=10)         # off (None) unless [clips] folder is set
    encoder.on_packet = clips.packet                 # streaming: keep the encoder's H.264 packets
    clips.cut(label, user) -> name                   # the dream ended: write its last seconds

Where the pictures come from, whichever costs least (measured on this project's 2-core CPU):
- streaming (RTMP): the encoder hands over every H.264 packet it sends; the last seconds are
  kept (a ring of ~4 MB at 3000 kb/s), and a clip is those packets from a keyframe on (one
  every 2 s), remuxed into mp4 without re-encoding: 10 ms for 6 s of 1280x720.
- otherwise: the shown frames' JPEGs (already encoded for MJPEG) are kept, and a clip is them
  decoded and encoded with libx264 (veryfast, one thread, niced like the web thread): 0.4 s
  of CPU for 8 s at 480x270 (1.3% of a core over a 30-s dream), 2.9 s at 1280x720.
Both run in the "clip-writer" thread, never in the dream's or the event loop's; a clip still
being written when the next dream ends makes that one be skipped, never queued. Past
`max_mb` the oldest clips in the folder go first. A folder that cannot be written (missing
and not creatable, read-only, full) stops clips with one log line; the stream never notices.
"""
from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from dreamer.runtime import lower_this_thread

from ..config import ClipSettings
from ..core.framebus import FrameBus
from ..core.worker import Worker

log = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{8}-\d{6})-([a-z0-9-]+?)(?:-(\d+))?\.mp4$")  # what we write, and all we serve
KEYFRAME_SLACK_S = 3.0  # packets kept beyond `seconds`: a clip starts at the keyframe before its start
LISTED = 20  # clips named in the state


@dataclass
class Clip:
    name: str  # file name in the folder
    label: str
    user: str | None
    seconds: float | None  # None: left by an earlier run (not measured again)
    size: int  # bytes

    def to_json(self) -> dict:
        return {"name": self.name, "url": f"/clips/{self.name}", "label": self.label, "user": self.user,
                "seconds": None if self.seconds is None else round(self.seconds, 1), "bytes": self.size}


def file_name(label: str, taken: set[str], now: float | None = None) -> str:
    """'20261201-212500-pizza-volcano.mp4': when and what, nothing a viewer typed but the label."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40].strip("-") or "dream"
    name, n = f"{stamp}-{slug}.mp4", 2
    while name in taken:
        name, n = f"{stamp}-{slug}-{n}.mp4", n + 1
    return name


def remux_h264(extradata: bytes, packets: list[bytes], fps: float, path: Path) -> int:
    """Annex-B H.264 packets (an encoder's, from a keyframe on) -> mp4 without re-encoding;
    returns the number of frames. The raw stream is read back by FFmpeg's own h264 demuxer,
    which finds the codec parameters the mp4 header needs; timestamps are the constant rate."""
    tb, n = Fraction(1 / fps).limit_denominator(100_000), 0
    with av.open(io.BytesIO(extradata + b"".join(packets)), format="h264") as src, \
            av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        video = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size == 0:
                continue
            packet.stream, packet.time_base = video, tb
            packet.pts = packet.dts = n
            packet.duration = 1
            dst.mux(packet)
            n += 1
    return n


def encode_jpegs(frames: list[tuple[float, bytes]], fps: float, path: Path) -> int:
    """(time, JPEG) pairs -> H.264 mp4 at the JPEGs' size, timed as they were shown."""
    first = cv2.imdecode(np.frombuffer(frames[0][1], np.uint8), cv2.IMREAD_COLOR)
    h, w = (d // 2 * 2 for d in first.shape[:2])  # yuv420p needs even sides
    t0, last, n = frames[0][0], -1, 0
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        video = dst.add_stream("libx264", rate=round(fps))
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"preset": "veryfast", "crf": "23", "threads": "1"}
        for t, jpeg in frames:
            pts = round((t - t0) * 1000)
            if pts <= last:
                continue
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[:h, :w]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
            frame.pts, frame.time_base, last = pts, Fraction(1, 1000), pts
            dst.mux(video.encode(frame))
            n += 1
        dst.mux(video.encode())
    return n


def discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # the folder itself is gone or unusable: nothing left to tidy
        pass


class ClipFolder:
    """The folder and its cap: what is in it (ours only), oldest removed first."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder, self.max_bytes = folder, max_bytes
        self.clips: deque[Clip] = deque()  # oldest first

    def open(self) -> None:
        """Create the folder if needed and take stock of the clips an earlier run left; raises
        OSError when it cannot be written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        probe = self.folder / ".dreamstream-write-test"
        probe.write_bytes(b"")
        probe.unlink()
        for path in sorted(self.folder.glob("*.mp4")):
            m = NAME.match(path.name)
            if m:
                self.clips.append(Clip(path.name, m.group(2).replace("-", " "), None, None, path.stat().st_size))
        self.trim()

    def add(self, clip: Clip) -> None:
        self.clips.append(clip)
        self.trim()

    def trim(self) -> None:
        total = sum(c.size for c in self.clips)
        while self.clips and total > self.max_bytes:
            old = self.clips.popleft()
            total -= old.size
            (self.folder / old.name).unlink(missing_ok=True)
            log.debug("clips: removed %s (over %d MB)", old.name, self.max_bytes // 2**20)

    def path(self, name: str) -> Path | None:
        """The file behind a name we wrote (anything else: None, so no path is ever built from a request)."""
        return self.folder / name if any(c.name == name for c in self.clips) else None


class Clips(Worker):
    """Keeps the last seconds and writes a clip when a dream ends (its own thread)."""

    name = "clip-writer"

    def __init__(self, settings: ClipSettings, fps: float, nice: int = 10, streaming: bool = False):
        super().__init__()
        self.s, self.fps, self.nice, self.streaming = settings, fps, nice, streaming
        self.folder = ClipFolder(Path(settings.folder).expanduser(), int(settings.max_mb * 2**20))
        self.enabled = True
        self.on_written = lambda clip, ended_id: None  # the service links it from the recent strip
        self._lock = threading.Lock()
        self._jpegs: deque[tuple[float, bytes]] = deque()  # (time shown, JPEG), not streaming
        self._packets: deque[tuple[float, bool, bytes]] = deque()  # (stream time, keyframe, data), streaming
        self._stream = None  # the encoder's video stream the packets belong to
        self._extradata = b""
        self._job: tuple | None = None
        self._wake = threading.Event()
        self.bus: FrameBus | None = None  # the shown frames, whose JPEGs are kept when not streaming

    def open(self) -> bool:
        """At start: False (and one log line) when the folder cannot be written."""
        try:
            self.folder.open()
        except OSError as e:
            self.stop_clips(f"cannot write to {self.folder.folder} ({e.strerror or e})")
        return self.enabled

    def stop_clips(self, why: str) -> None:
        if self.enabled:
            self.enabled = False
            log.warning("clips: %s; no clips for the rest of this run", why)
        with self._lock:
            self._jpegs.clear()
            self._packets.clear()

    # -- the last seconds -------------------------------------------------------------------
    def packet(self, stream, packet) -> None:
        """The RTMP encoder's hook, in its thread: one encoded video packet, before it is sent."""
        if not self.enabled or packet.pts is None:
            return
        at = float(packet.pts * packet.time_base)  # the stream's own clock: a clip lasts what it plays
        with self._lock:
            if stream is not self._stream:  # a new session: a new encoder, new parameters
                self._stream, self._extradata = stream, bytes(stream.codec_context.extradata or b"")
                self._packets.clear()
            self._packets.append((at, packet.is_keyframe, bytes(packet)))
            while self._packets and self._packets[0][0] < at - self.s.seconds - KEYFRAME_SLACK_S:
                self._packets.popleft()

    def record(self, bus: FrameBus) -> None:
        """Not streaming: keep the JPEGs of the shown frames (encoded for MJPEG while anyone watches; else
        here, in this niced thread).
        Runs in the writer's thread between clips (see job)."""
        frame = bus.latest()
        if frame is None or not self.enabled:
            return
        with self._lock:
            if self._jpegs and self._jpegs[-1][0] >= frame.time:
                return
            self._jpegs.append((frame.time, bus.jpeg(frame)))
            while self._jpegs and self._jpegs[0][0] < frame.time - self.s.seconds:
                self._jpegs.popleft()

    # -- writing --------------------------------------------------------------------------
    def cut(self, label: str, user: str | None, ended_id: str) -> bool:
        """A dream ended: hand its last seconds to the writer (returns at once). False when
        there is nothing to write, clips are off, or the last clip is still being written."""
        if not self.enabled:
            return False
        with self._lock:
            if self._job is not None:
                log.debug("clips: still writing the last one; %s skipped", label)
                return False
            if self.streaming:
                packets = list(self._packets)
                if not packets:
                    return False
                starts = [i for i, (t, key, _) in enumerate(packets) if key and t <= packets[-1][0] - self.s.seconds]
                keys = [i for i, (_, key, _) in enumerate(packets) if key]
                start = starts[-1] if starts else keys[0] if keys else None
                if start is None:
                    return False
                seconds = packets[-1][0] - packets[start][0] + 1 / self.fps
                what = ("h264", self._extradata, [d for _, _, d in packets[start:]], seconds)
            else:
                if len(self._jpegs) < 2:
                    return False
                frames = list(self._jpegs)
                what = ("jpeg", frames, frames[-1][0] - frames[0][0])
            self._job = (label, user, ended_id, what)
        self._wake.set()
        return True

    def stop_soon(self) -> None:
        super().stop_soon()
        self._wake.set()  # the writer may be waiting for a clip to write

    def job(self) -> None:
        if self.nice:
            lower_this_thread(self.nice)
        bus = self.bus
        while not self.stopping:
            self._wake.wait(None if bus is None else 1.0 / self.fps)
            if self.stopping:  # a clip not yet begun is not begun now
                break
            if bus is not None and not self.streaming:
                self.record(bus)
            if self._wake.is_set() and self._job is not None:
                self._wake.clear()
                self._write(*self._job)
                with self._lock:
                    self._job = None

    def _write(self, label: str, user: str | None, ended_id: str, what: tuple) -> None:
        name = file_name(label, {c.name for c in self.folder.clips})
        path, part = self.folder.folder / name, self.folder.folder / (name + ".part")
        t0 = time.monotonic()
        try:
            if what[0] == "h264":
                frames, seconds = remux_h264(what[1], what[2], self.fps, part), what[3]
            else:
                frames, seconds = encode_jpegs(what[1], self.fps, part), what[2]
            part.rename(path)
            clip = Clip(name, label, user, seconds, path.stat().st_size)
        except OSError as e:  # full, read-only, gone: stop clips, never the stream
            discard(part)
            self.stop_clips(f"cannot write {path} ({e.strerror or e})")
            return
        except (av.error.FFmpegError, ValueError) as e:  # a clip that cannot be made: this one only
            discard(part)
            log.warning("clips: %s not written: %s: %s", name, type(e).__name__, e)
            return
        self.folder.add(clip)
        if self.folder.path(name) is None:
            log.warning("clips: %s alone is over [clips] max_mb (%g); not kept", name, self.s.max_mb)
            return
        log.info("clips: %s (%.1f s, %d frames, %d kB, written in %.2f s)", name, seconds, frames,
                 clip.size // 1000, time.monotonic() - t0)
        self.on_written(clip, ended_id)

    def listing(self) -> list[dict]:
        return [c.to_json() for c in reversed(list(self.folder.clips)[-LISTED:])]
