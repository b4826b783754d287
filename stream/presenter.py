"""Presenter: a constant output frame rate, whatever the dream rate.

The dream thread publishes optimized frames ("keyframes"); each is the previous one zoomed
by `zoom` plus new detail. Between keyframes the presenter keeps zooming the last one
smoothly at the output rate (the 2015 stream did this at 25 fps), and when the next
keyframe lands it cross-fades to it: the geometry already matches, so the picture never
stalls and never jumps. Runs in its own thread, paced on `start + n / fps` so it never
drifts; JPEG encoding happens here (in `FrameBus.publish`), not on the event loop. `Motion`
holds the arithmetic, with the time passed in.

With an output size larger than the dream (720p for Twitch from a 480x270 dream), each
dreamed frame is sharpened once at its own size (cheap: 4 a second), and each shown frame
is zoomed and upscaled in one bicubic warp straight to the output size: one pass over the
output pixels per shown frame, not a resize, a sharpen and a warp.
"""
from __future__ import annotations

import logging
import math
import time

import cv2
import numpy as np

from .framebus import Frame, FrameBus
from .worker import RateMeter, Worker

log = logging.getLogger(__name__)


def zoom_rgb(rgb: np.ndarray, scale: float, angle_deg: float = 0.0, shift=(0.0, 0.0),
             size: tuple[int, int] | None = None) -> np.ndarray:
    """Zoom/rotate/shift about the centre, reflected edges (matches dreamer.regularize.affine),
    and, with `size` (w, h), scaled to that size in the same warp (bicubic)."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle_deg, scale)
    m[:, 2] += (-shift[0] * w * scale, -shift[1] * h * scale)
    if size is None or size == (w, h):
        return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    sx, sy = size[0] / w, size[1] / h  # pixel centres: x_out + 0.5 = sx * (x + 0.5)
    m = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]]) @ np.vstack([m, [0, 0, 1]])
    return cv2.warpAffine(rgb, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def sharpen(rgb: np.ndarray, amount: float = 0.6, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: what an upscale softens, put back before it (at the dream's size)."""
    return cv2.addWeighted(rgb, 1 + amount, cv2.GaussianBlur(rgb, (0, 0), sigma), -amount, 0)


class Motion:
    """What the presenter shows at a moment, given the newest dreamed frame: the arithmetic of
    zooming on between dreamed frames and cross-fading to a new one, with the time passed in
    (so it is tested exactly, without a clock)."""

    def __init__(self, zoom: float, spin_deg: float = 0.0, drift=(0.0, 0.0), fade_s: float = 0.25,
                 size: tuple[int, int] | None = None):
        """`size`: the output's (width, height); None: the dream's own."""
        self.zoom, self.spin_deg, self.drift, self.fade_s, self.size = zoom, spin_deg, drift, fade_s, size
        self.key: Frame | None = None
        self.key_rgb: np.ndarray | None = None  # the dreamed frame, sharpened when it is upscaled
        self.interval = 1.0  # expected seconds between dreamed frames (moving average)
        self.shown: np.ndarray | None = None
        self.faded_from: np.ndarray | None = None
        self.fade_start = 0.0

    def frame(self, latest: Frame, now: float) -> np.ndarray:
        if self.key is None or latest.seq != self.key.seq:
            if self.key is not None:
                self.interval = 0.8 * self.interval + 0.2 * max(1e-3, latest.time - self.key.time)
                self.faded_from, self.fade_start = self.shown, now
            self.key = latest
            h, w = latest.rgb.shape[:2]
            self.key_rgb = sharpen(latest.rgb) if self.size and self.size[0] > w else latest.rgb
        key = self.key
        # progress through the zoom to the next dreamed frame; a late one keeps it moving
        p = min(2.0, (now - key.time) / self.interval)
        if p > 0 or self.size:
            frame = zoom_rgb(self.key_rgb, math.pow(1 + self.zoom, p), self.spin_deg * p,
                             (self.drift[0] * p, self.drift[1] * p), self.size)
        else:
            frame = self.key_rgb
        a = (now - self.fade_start) / self.fade_s
        if self.faded_from is not None and a < 1 and self.faded_from.shape == frame.shape:
            frame = cv2.addWeighted(self.faded_from, 1 - a, frame, a, 0)
        self.shown = frame
        return frame


class Presenter(Worker):
    name = "presenter"

    def __init__(self, keyframes: FrameBus, out: FrameBus, fps: float, zoom: float, spin_deg: float = 0.0,
                 drift=(0.0, 0.0), fade_s: float = 0.25, size: tuple[int, int] | None = None):
        super().__init__()
        self.keyframes, self.out, self.fps = keyframes, out, fps
        self.motion = (zoom, spin_deg, drift, fade_s, size)
        self.meter = RateMeter(window=20)

    @property
    def rate(self) -> float:
        """Measured output frames per second."""
        return self.meter.rate

    def job(self) -> None:
        while self.keyframes.wait(0, timeout=0.5) is None:
            if self.stopping:
                return
        motion = Motion(*self.motion)
        start, n = time.monotonic(), 0
        while not self.stopping:
            self.out.publish(motion.frame(self.keyframes.latest(), time.monotonic()))
            self.meter.tick()
            n += 1
            late = time.monotonic() - (start + n / self.fps)
            if late > 2 / self.fps:  # fell behind (machine busy): skip the missed frames, never burst them
                start, n = time.monotonic(), 0
            self._stop.wait(max(0.0, start + n / self.fps - time.monotonic()))
