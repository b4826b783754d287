"""The RTMP encoder: the shown frames as FLV (H.264 + AAC) pushed to any RTMP/RTMPS ingest.

Its own thread reads the newest frame at a constant rate (`start + n / fps`, repeating
frames when the presenter is slower), draws the overlay, and encodes: libx264 veryfast +
zerolatency (or NVENC when asked for and working), yuv420p, constant bitrate, a keyframe
every `keyframe_s`, plus an AAC track (silence, or an audio file looped). NVENC is tried
first when asked for: PyAV lists h264_nvenc on any machine, but opening it fails without an
NVIDIA driver or past a consumer card's limit of sessions, so a probe opens it before the
connection; when it cannot, one log line says why and libx264 streams instead. The frame goes to
yuv420p through OpenCV (0.3 ms at 720p on the 2-core CPU, where FFmpeg's own conversion
took 1.8 ms), the same limited-range BT.601 that FFmpeg would give it. One session is
one connection; when the ingest drops, the session ends and the `Worker` starts another
after its backoff (1 s doubling to 5 s, back to 1 s once an ingest has taken a second of
video), so an ingest that comes back is fed again within seconds, however often it dropped
before. The dream loop and the web server never notice. The stream key is never printed:
every part of the URL after the host is masked (rtmp://host/****), and error texts are
scrubbed of it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from fractions import Fraction
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from ..config import RtmpSettings, bitrate_k
from ..core.framebus import FrameBus
from ..core.gate import ALWAYS
from ..core.sanitize import mask_url
from ..core.worker import Worker, again
from .overlay import draw_overlay

log = logging.getLogger(__name__)

AUDIO_RATE = 44100
AUDIO_FRAME = 1024  # samples per AAC frame



def x264_threads(configured: int, width: int, height: int) -> int:
    """libx264's threads: `configured`, else 1 up to 720p and 2 above. Its own default (1.5 a
    core, slices across all of them) put an encoder thread on the dream's core: streaming 720p30
    on 2 cores, the dream made 16 steps/s with it and 21 with one x264 thread, which encodes a
    720p frame in 12-15 ms of the 33 ms it has (docs/performance.md)."""
    return configured or (1 if width * height <= 1280 * 720 else 2)


# NVENC low latency, constant bitrate, no B-frames (RTMP ingests want none).
NVENC_OPTIONS = {"preset": "p4", "tune": "ll", "rc": "cbr", "bf": "0"}


def nvenc_error(width: int, height: int, fps: float) -> str | None:
    """None when h264_nvenc opens here at this size and rate, else why not (one line). The
    probe's session is closed again at once."""
    if "h264_nvenc" not in av.codecs_available:
        return "h264_nvenc is not in this FFmpeg build"
    codec = av.CodecContext.create("h264_nvenc", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.framerate, codec.time_base = Fraction(round(fps)), Fraction(1, round(fps))
    codec.options = dict(NVENC_OPTIONS)
    try:
        codec.open()
    except (av.error.FFmpegError, OSError, ValueError) as e:  # FFmpeg's reason, without its call and options
        return getattr(e, "strerror", None) or f"{type(e).__name__}: {e}"
    finally:
        del codec  # frees the session (PyAV closes a codec context when it goes)
    return None


class AudioSource:
    """AAC-ready stereo float frames: silence, or an audio file decoded once and looped."""

    def __init__(self, path: str = ""):
        self.samples = np.zeros((2, AUDIO_FRAME), np.float32)
        if path:
            with av.open(path) as f:
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
                chunks = [r.to_ndarray() for fr in f.decode(audio=0) for r in resampler.resample(fr)]
            if chunks:
                self.samples = np.concatenate(chunks, axis=1).astype(np.float32)
        self.pos = 0

    def next(self) -> np.ndarray:
        idx = (self.pos + np.arange(AUDIO_FRAME)) % self.samples.shape[1]
        self.pos = (self.pos + AUDIO_FRAME) % self.samples.shape[1]
        return np.ascontiguousarray(self.samples[:, idx])


class RtmpEncoder(Worker):
    name = "rtmp-encoder"

    def __init__(self, url: str, settings: RtmpSettings, bus: FrameBus,
                 overlay: Callable[[], list[str]] = list, use_nvenc: bool = False):
        super().__init__()
        self.url, self.masked, self.s = url, mask_url(url), settings
        self.bus, self.overlay = bus, overlay
        self.preview: np.ndarray | None = None  # the last frame sent, overlay and all (/preview.jpg)
        self.use_nvenc = use_nvenc  # until a probe finds that NVENC cannot open here
        self.codec = ""  # the video encoder of the session that runs
        self.audio = AudioSource(settings.audio_file)
        self.connected = False
        self.bitrate_kbps = 0.0  # what actually went out over the last seconds
        self.frames_sent = 0  # video frames handed to the ingest
        self.pictures_sent = 0  # ... of which showed a new picture (not a repeat of the last)
        self.frame_ms = {"overlay": 0.0, "convert": 0.0, "encode": 0.0}  # moving averages per sent frame
        self.on_packet: Callable | None = None  # (video stream, packet) for each encoded video packet: clips
        self.gate = ALWAYS  # a dreamer beside others on one stream: pushes while it holds the lease

    def scrub(self, text: str) -> str:
        secret = urlsplit(self.url).path
        return text.replace(self.url, self.masked).replace(secret, "/****") if secret.strip("/") else text

    def job(self) -> None:
        """One connection: stream until the ingest drops or we stop. Expected failures (the
        ingest refused or went away) are one line in the log; the Worker restarts us."""
        try:
            self._stream()
        except (av.error.FFmpegError, OSError, ValueError) as e:
            why = self.scrub(f"{type(e).__name__}: {e}")
            self.backoff.repeats.say(log, logging.WARNING, f"rtmp: {self.masked}: {why}")
        finally:
            self.connected, self.bitrate_kbps = False, 0.0

    def _open(self, width: int, height: int):
        if self.use_nvenc:
            why = nvenc_error(width, height, self.s.fps)
            if why is not None:  # said once: later sessions go straight to libx264
                log.warning("rtmp: NVENC cannot be opened here (%s); encoding with libx264 instead", why)
                self.use_nvenc = False
        container = av.open(self.url, mode="w", format="flv", timeout=(10.0, 10.0))
        fps, g = round(self.s.fps), max(1, round(self.s.keyframe_s * self.s.fps))
        self.target_kbps = bitrate_k(self.s, (width, height))
        rate = f"{self.target_kbps}k"
        if self.use_nvenc:
            video = container.add_stream("h264_nvenc", rate=fps)
            video.options = {**NVENC_OPTIONS, "g": str(g)}
        else:
            video = container.add_stream("libx264", rate=fps)
            video.options = {"preset": self.s.x264_preset, "tune": "zerolatency",
                             "x264-params": f"keyint={g}:min-keyint={g}:scenecut=0:nal-hrd=cbr:force-cfr=1",
                             "maxrate": rate, "bufsize": rate}
            video.options["threads"] = str(x264_threads(self.s.threads, width, height))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = self.target_kbps * 1000
        self.codec = video.codec_context.name
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        audio.bit_rate = 128_000
        return container, video, audio

    def _timed(self, t0: float, t1: float, t2: float, t3: float) -> None:
        for part, seconds in (("overlay", t1 - t0), ("convert", t2 - t1), ("encode", t3 - t2)):
            self.frame_ms[part] = 0.9 * self.frame_ms[part] + 0.1 * seconds * 1000

    def _first_frame(self):
        """However long the first dreamed frame takes (a big frame on a CPU: many seconds)."""
        while not self.stopping:
            frame = self.bus.wait(0, timeout=0.5) if self.gate.wait_held(0.5) else None
            if frame is not None:
                return frame
        return None

    def _stream(self) -> None:
        first = self._first_frame()
        if first is None:
            return
        h, w = (d // 2 * 2 for d in first.rgb.shape[:2])  # yuv420p needs even sides
        container, video, audio = self._open(w, h)
        try:
            start, n, samples = time.monotonic(), 0, 0
            sent, window_start, last_seq = 0, start, 0
            while not self.stopping:
                # the lease run out on the clock: nothing is sent until it is renewed (a slow reply
                # from Redis), or, another dreamer having the stream, the ingest is left to it
                if not self.gate.held() and not self.gate.wait_held(0.5):
                    log.warning("rtmp: the lease is gone: this dreamer stops pushing to %s", self.masked)
                    self.backoff.reset()  # not a failure: pushing again at once if it comes back
                    return
                t0 = time.monotonic()
                shown = self.bus.latest()
                rgb = shown.rgb[:h, :w]
                if self.s.overlay:
                    rgb = draw_overlay(rgb, self.overlay(), self.s.overlay_position, self.s.overlay_scale)
                self.preview = rgb
                t1 = time.monotonic()
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420),
                                                   format="yuv420p")
                frame.pts = n
                t2 = time.monotonic()
                packets = video.encode(frame)
                self._timed(t0, t1, t2, time.monotonic())
                if self.on_packet is not None:  # before muxing, which takes the packets over
                    for p in packets:
                        self.on_packet(video, p)
                sent += sum(p.size for p in packets)
                container.mux(packets)
                n += 1
                self.frames_sent += 1
                self.pictures_sent += shown.seq != last_seq
                last_seq = shown.seq
                if n % round(self.s.fps) == 0:  # once a second
                    now = time.monotonic()
                    self.bitrate_kbps, sent, window_start = sent * 8 / 1000 / (now - window_start), 0, now
                    if not self.connected:  # a second of video got through: the ingest took us
                        self.connected = True
                        log.info("rtmp: streaming %dx%d at %g fps, %d kb/s to %s%s", w, h, self.s.fps,
                                 self.target_kbps, self.masked, again(self.backoff.reset()))
                while samples < n / self.s.fps * AUDIO_RATE:  # keep audio level with video
                    af = av.AudioFrame.from_ndarray(self.audio.next(), format="fltp", layout="stereo")
                    af.sample_rate, af.pts = AUDIO_RATE, samples
                    container.mux(audio.encode(af))
                    samples += AUDIO_FRAME
                self._stop.wait(max(0.0, start + n / self.s.fps - time.monotonic()))
        finally:
            try:
                container.close()
            except (av.error.FFmpegError, OSError):
                pass  # the ingest is already gone
