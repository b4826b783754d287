"""Presenter: a constant output frame rate, whatever the dream rate.

The dream thread publishes optimized frames ("keyframes"); each is the previous one zoomed
by `zoom` plus new detail. Between keyframes the presenter keeps zooming the last one
smoothly at the output rate (the 2015 stream did this at 25 fps), and when the next
keyframe lands it cross-fades to it: the geometry already matches, so the picture never
stalls and never jumps. Runs in its own thread, paced on `start + n / fps` so it never
drifts; JPEG encoding happens here (in `FrameBus.publish`), not on the event loop.
"""
from __future__ import annotations

import logging
import math
import time

import cv2
import numpy as np

from .framebus import FrameBus
from .worker import Worker

log = logging.getLogger(__name__)


def zoom_rgb(rgb: np.ndarray, scale: float, angle_deg: float = 0.0, shift=(0.0, 0.0)) -> np.ndarray:
    """Zoom/rotate/shift about the centre, reflected edges (matches dreamer.regularize.affine)."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -angle_deg, scale)
    m[:, 2] += (-shift[0] * w * scale, -shift[1] * h * scale)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class Presenter(Worker):
    name = "presenter"

    def __init__(self, keyframes: FrameBus, out: FrameBus, fps: float, zoom: float, spin_deg: float = 0.0,
                 drift=(0.0, 0.0), fade_s: float = 0.25):
        super().__init__()
        self.keyframes, self.out, self.fps = keyframes, out, fps
        self.zoom, self.spin_deg, self.drift, self.fade_s = zoom, spin_deg, drift, fade_s
        self.rate = 0.0  # measured output fps

    def run(self) -> None:
        key = None
        while key is None:
            if self._stop.is_set():
                return
            key = self.keyframes.wait(0, timeout=0.5)
        interval = 1.0  # expected seconds between keyframes (moving average)
        shown = faded_from = None
        fade_start = last = 0.0
        start, n = time.monotonic(), 0
        while not self._stop.is_set():
            latest = self.keyframes.latest()
            now = time.monotonic()
            if latest is not None and latest.seq != key.seq:
                interval = 0.8 * interval + 0.2 * max(1e-3, latest.time - key.time)
                key, faded_from, fade_start = latest, shown, now
            # progress through the zoom to the next keyframe; a late keyframe keeps it moving
            p = min(2.0, (now - key.time) / interval)
            frame = zoom_rgb(key.rgb, math.pow(1 + self.zoom, p), self.spin_deg * p,
                             (self.drift[0] * p, self.drift[1] * p)) if p > 0 else key.rgb
            a = (now - fade_start) / self.fade_s
            if faded_from is not None and a < 1 and faded_from.shape == frame.shape:
                frame = cv2.addWeighted(faded_from, 1 - a, frame, a, 0)
            self.out.publish(frame)
            shown = frame
            if last:
                self.rate = 0.95 * self.rate + 0.05 / max(1e-6, now - last) if self.rate else 1 / (now - last)
            last, n = now, n + 1
            late = time.monotonic() - (start + n / self.fps)
            if late > 1.0:  # fell far behind (machine busy): re-anchor instead of bursting
                start, n = time.monotonic(), 0
            self._stop.wait(max(0.0, start + n / self.fps - time.monotonic()))
