"""The RTMP encoder: the shown frames as FLV (H.264 + AAC) pushed to any RTMP/RTMPS ingest.

Its own thread reads the newest frame at a constant rate (`start + n / fps`, repeating
frames when the dream is slower), draws the overlay, and encodes: libx264 veryfast +
zerolatency (or NVENC when asked for and working), yuv420p, constant bitrate, a keyframe
every `keyframe_s`, plus an AAC track (silence, or an audio file looped). When the ingest
drops, it closes, waits (backoff 1 s doubling to 30 s) and reconnects; the dream loop and
the web server never notice. The stream key is never printed: URLs are masked as
rtmp://host/app/****, and error texts are scrubbed of the key.
"""
from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from .config import RtmpSettings
from .framebus import FrameBus
from .metrics import Metrics
from .worker import Worker

log = logging.getLogger(__name__)

AUDIO_RATE = 44100
AUDIO_FRAME = 1024  # samples per AAC frame


def mask_url(url: str) -> str:
    """rtmp://host:port/app/KEY -> rtmp://host:port/app/**** (no userinfo, no query)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/").split("/")
    if len(path) > 2:
        path[-1] = "****"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{'/'.join(path)}"


def hershey_text(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only: accents are dropped ("Zoë" -> "Zoe"), other
    characters become "?"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c if c.isascii() else "?" for c in decomposed if c.isascii() or not unicodedata.combining(c))


def draw_overlay(rgb: np.ndarray, text: str) -> np.ndarray:
    """The request and who asked, bottom left, white on a dark band (as the 2015 stream did)."""
    text = hershey_text(text)
    if not text:
        return rgb
    out = rgb.copy()
    h, w = out.shape[:2]
    scale = max(0.35, h / 720)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    pad = max(3, int(8 * scale))
    y0 = h - th - base - 2 * pad
    band = out[y0:, : min(w, tw + 2 * pad)]
    band[:] = (band * 0.45).astype(np.uint8)
    cv2.putText(out, text, (pad, h - base - pad), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, int(2 * scale)), cv2.LINE_AA)
    return out


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

    def __init__(self, url: str, settings: RtmpSettings, bus: FrameBus, metrics: Metrics,
                 overlay_text: Callable[[], str] = lambda: "", use_nvenc: bool = False):
        super().__init__()
        self.url, self.masked, self.s = url, mask_url(url), settings
        self.bus, self.metrics, self.overlay_text = bus, metrics, overlay_text
        self.use_nvenc = use_nvenc and "h264_nvenc" in av.codecs_available
        self.audio = AudioSource(settings.audio_file)
        self.connected = False

    def scrub(self, text: str) -> str:
        return text.replace(self.url, self.masked).replace(urlsplit(self.url).path, "/****")

    def run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._stream()
            except (av.error.FFmpegError, OSError, ValueError) as e:
                log.warning("rtmp: %s: %s", self.masked, self.scrub(f"{type(e).__name__}: {e}"))
            self.connected = False
            if self._stop.is_set():
                break
            self.metrics.encoder_restarts.inc()
            if time.monotonic() - began > 30:  # it had been streaming fine: retry quickly
                backoff = 1.0
            log.info("rtmp: reconnecting to %s in %.0f s", self.masked, backoff)
            self._stop.wait(backoff)
            backoff = min(30.0, backoff * 2)

    def _open(self, width: int, height: int):
        container = av.open(self.url, mode="w", format="flv", timeout=(10.0, 10.0))
        fps, g = round(self.s.fps), max(1, round(self.s.keyframe_s * self.s.fps))
        rate = f"{self.s.bitrate_k}k"
        if self.use_nvenc:
            video = container.add_stream("h264_nvenc", rate=fps)
            video.options = {"preset": "p4", "tune": "ll", "rc": "cbr", "g": str(g), "bf": "0"}
        else:
            video = container.add_stream("libx264", rate=fps)
            video.options = {"preset": "veryfast", "tune": "zerolatency",
                             "x264-params": f"keyint={g}:min-keyint={g}:scenecut=0:nal-hrd=cbr:force-cfr=1",
                             "maxrate": rate, "bufsize": rate}
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = self.s.bitrate_k * 1000
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        audio.bit_rate = 128_000
        return container, video, audio

    def _stream(self) -> None:
        first = self.bus.wait(0, timeout=10)
        if first is None:
            raise ValueError("no frames to stream yet")
        h, w = (d // 2 * 2 for d in first.rgb.shape[:2])  # yuv420p needs even sides
        container, video, audio = self._open(w, h)
        try:
            start, n, samples = time.monotonic(), 0, 0
            while not self._stop.is_set():
                rgb = self.bus.latest().rgb[:h, :w]
                if self.s.overlay:
                    rgb = draw_overlay(rgb, self.overlay_text())
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = n
                container.mux(video.encode(frame))
                if not self.connected and n >= round(self.s.fps):  # a second of packets got through
                    self.connected = True
                    log.info("rtmp: streaming %dx%d at %g fps, %d kb/s to %s", w, h, self.s.fps,
                             self.s.bitrate_k, self.masked)
                n += 1
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
