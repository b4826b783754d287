"""Presenter: a constant output frame rate, whatever the dream rate.

The dream thread publishes optimized frames ("keyframes"), each carrying the moment its
picture stands for. The presenter shows the newest one moved on by the stream's motion
(`dreamer.loop.motion_pose`) from that moment to now, at the output rate (the 2015 stream
did this at 25 fps), and when the next keyframe lands it cross-fades to it. Both threads
work from the same moments and the same motion per second, so the geometry already
matches: the picture never stalls, never jumps, and zooms at the configured speed however
fast or slow the dream is. Runs in its own thread, paced on `start + n / fps` so it never
drifts; JPEG encoding happens here (in `FrameBus.publish`), not on the event loop. `Motion`
holds the arithmetic, with the time passed in.

With a live source the presenter shows the source's frame rate instead: for every new source
frame, the newest dreamed frame's residual carried onto it along the flow (`LiveMotion`; no
network work), so a 30 fps camera comes out at 30 fps however slowly the dream goes, and the
live picture is shown at the output's size, only the residual upscaled.

With an output size larger than the dream (720p for Twitch from a 480x270 dream), each
dreamed frame is sharpened once at its own size (cheap: a few a second); each shown frame is
warped and faded at the dream's size, then upscaled in one bicubic resize. That costs 1.8 ms
a 720p frame where one bicubic warp straight to 720p cost 9 ms (measured on the 2-core CPU,
docs/performance.md); the sharpening is set so that the two come out equally sharp.
"""
from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from dreamer.flow import residual_of
from dreamer.live import LiveSettings, Residual
from dreamer.loop import MAX_DT_S, DreamSettings, motion_pose
from dreamer.photo import cover

from ..core.framebus import Frame, FrameBus
from ..core.gate import ALWAYS
from ..core.worker import RateMeter, Worker

log = logging.getLogger(__name__)

# Unsharp amount before an upscale: with the warp at the dream's size and a bicubic resize
# after it, 0.9 gives the Laplacian variance that 0.6 gave one bicubic warp to the output size.
UPSCALE_SHARPEN = 0.9


def zoom_rgb(rgb: np.ndarray, scale: float, angle_deg: float = 0.0, shift=(0.0, 0.0),
             interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Zoom/rotate/shift about the centre, reflected edges (matches dreamer.regularize.affine)."""
    h, w = rgb.shape[:2]
    if scale == 1.0 and not angle_deg and not any(shift):
        return rgb
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle_deg, scale)
    m[:, 2] += (-shift[0] * w * scale, -shift[1] * h * scale)
    return cv2.warpAffine(rgb, m, (w, h), flags=interpolation, borderMode=cv2.BORDER_REFLECT)


def upscale(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """To `size` (w, h) with bicubic interpolation; as it is when None or already that size."""
    if size is None or size == (rgb.shape[1], rgb.shape[0]):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)


def sharpen(rgb: np.ndarray, amount: float = 0.6, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: what an upscale softens, put back before it (at the dream's size)."""
    return cv2.addWeighted(rgb, 1 + amount, cv2.GaussianBlur(rgb, (0, 0), sigma), -amount, 0)


class Motion:
    """What the presenter shows at a moment, given the newest dreamed frame: the keyframe
    moved on from its moment to now, and a cross-fade from what was shown to a new
    keyframe, with the time passed in (so it is tested exactly, without a clock)."""

    def __init__(self, motion: DreamSettings, fade_s: float = 0.25, size: tuple[int, int] | None = None):
        """`motion`: the stream's motion per second (zoom_per_s, spin_deg_per_s, drift_per_s);
        `size`: the output's (width, height); None: the dream's own."""
        self.motion, self.fade_s, self.size = motion, fade_s, size
        self.key: Frame | None = None
        self.key_rgb: np.ndarray | None = None  # the dreamed frame, sharpened when it is upscaled
        self.interval = fade_s  # seconds between dreamed frames' moments (moving average)
        self.small: np.ndarray | None = None  # what was shown last, at the dream's size
        self.faded_from: np.ndarray | None = None
        self.fade_start = 0.0
        self.last_now: float | None = None  # when the last frame was shown

    def ahead(self, key: Frame, now: float) -> float:
        """How far on from the keyframe's moment the picture is shown: never back, and a
        frame that is late is moved on at most as far as the dream thread would move it."""
        return min(MAX_DT_S, max(0.0, now - key.moment))

    def pose(self, key: Frame, now: float):
        """(scale, degrees, shift) of the warp applied to `key` at `now`."""
        return motion_pose(self.motion, self.ahead(key, now))

    def fade_time(self) -> float:
        """The cross-fade never outlasts the gap between dreamed frames: when every shown frame
        is a new dreamed one (a GPU), fading would only smear."""
        return min(self.fade_s, self.interval)

    def frame(self, latest: Frame, now: float) -> np.ndarray:
        if self.key is None or latest.seq != self.key.seq:
            if self.key is not None:
                self.interval = 0.8 * self.interval + 0.2 * max(1e-3, latest.moment - self.key.moment)
                # the fade began with the previous shown frame: the first showing of a new
                # keyframe already has one output frame's share of it (all of it on a GPU)
                self.faded_from, self.fade_start = self.small, self.last_now
            self.key = latest
            h, w = latest.rgb.shape[:2]
            upscaled = self.size is not None and self.size[0] > w
            self.key_rgb = sharpen(latest.rgb, UPSCALE_SHARPEN) if upscaled else latest.rgb
        scale, angle, shift = self.pose(self.key, now)
        how = cv2.INTER_CUBIC if self.size is not None else cv2.INTER_LINEAR  # the upscale follows: keep detail
        small = zoom_rgb(self.key_rgb, scale, angle, shift, how)
        fade = self.fade_time()
        a = (now - self.fade_start) / fade if fade > 0 else 1.0
        if self.faded_from is not None and a < 1 and self.faded_from.shape == small.shape:
            small = cv2.addWeighted(self.faded_from, 1 - a, small, a, 0)
        self.small, self.last_now = small, now
        return upscale(small, self.size)


class LiveMotion:
    """What the presenter shows with a live source: a source frame with the newest dreamed
    frame's residual carried onto it (along the flow from the source frame the dream grew on)
    and laid over it, at the output's size."""

    def __init__(self, live: LiveSettings, dream_size: tuple[int, int], size: tuple[int, int] | None = None):
        self.live, self.dream_size, self.size = live, tuple(dream_size), size
        self.life = Residual(live)
        self.key: Frame | None = None
        self.residual: np.ndarray | None = None

    def frame(self, key: Frame, src: Frame) -> np.ndarray:
        if self.key is None or key.seq != self.key.seq:
            self.key, self.residual = key, residual_of(key.rgb, key.source)
        small = cover(src.rgb, self.dream_size)
        carried = self.life.carry(self.residual, key.source, small, src.time - key.source_time)
        shown = small if self.size is None else src.rgb
        if carried.shape[:2] != shown.shape[:2]:
            carried = cv2.resize(carried, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_LINEAR)
        return cv2.addWeighted(shown.astype(np.float32), 1.0, carried, self.live.mix, 0.0, dtype=cv2.CV_8U)


class Presenter(Worker):
    name = "presenter"

    def __init__(self, keyframes: FrameBus, out: FrameBus, fps: float, motion: DreamSettings,
                 fade_s: float = 0.25, size: tuple[int, int] | None = None,
                 source: FrameBus | None = None, live: LiveSettings | None = None):
        """`source`: a live source's bus: one shown frame per source frame (at most `fps` a
        second), the residual carried onto it with `live`."""
        super().__init__()
        self.keyframes, self.out, self.fps = keyframes, out, fps
        self.source, self.live = source, live or LiveSettings()
        self.dream_size = tuple(motion.size)
        self.motion = (motion, fade_s, size)
        self.meter = RateMeter(window=20)
        self.frame_ms = 0.0  # moving average of the time one shown frame takes (warp, fade, upscale, JPEG)
        self.gate = ALWAYS  # a dreamer beside others on one stream: shows while it holds the lease

    @property
    def rate(self) -> float:
        """Measured output frames per second."""
        return self.meter.rate

    def _timed_publish(self, make) -> None:
        t0 = time.monotonic()
        self.out.publish(make(t0))
        self.frame_ms = 0.9 * self.frame_ms + 0.1 * (time.monotonic() - t0) * 1000
        self.meter.tick()

    def job(self) -> None:
        while self.keyframes.wait(0, timeout=0.5) is None:
            if self.stopping:
                return
        if self.source is not None:
            return self._show_source()
        motion = Motion(*self.motion)
        start, n, stale = time.monotonic(), 0, None
        while not self.stopping:
            if not self.gate.held():  # standing by: nothing to show; the pace starts again at a takeover
                self.gate.wait_held(0.5)
                start, n, stale = time.monotonic(), 0, self.keyframes.latest()
                continue
            if stale is not None:  # taken over: the dream's first frame from the stream's last, never an older one
                if self.keyframes.wait(stale.seq, timeout=0.5) is None:
                    continue
                stale, motion = None, Motion(*self.motion)
                start, n = time.monotonic(), 0
            self._timed_publish(lambda now: motion.frame(self.keyframes.latest(), now))
            n += 1
            late = time.monotonic() - (start + n / self.fps)
            if late > 2 / self.fps:  # fell behind (machine busy): skip the missed frames, never burst them
                start, n = time.monotonic(), 0
            self._stop.wait(max(0.0, start + n / self.fps - time.monotonic()))

    def _show_source(self) -> None:
        """One shown frame per new source frame, at most `fps` a second. A source that stalls
        (a stream reconnecting) leaves the last shown frame repeated twice a second, so every
        sink keeps its pace and health sees the presenter alive; /api/state says the source is not."""
        motion = LiveMotion(self.live, self.dream_size, self.motion[2])
        seq = 0
        while not self.stopping:
            if not self.gate.wait_held(0.5):  # standing by: nothing to show
                continue
            src = self.source.wait(seq, timeout=0.5)
            if src is None:
                shown = self.out.latest()
                if shown is not None:
                    self.out.publish(shown.rgb)
                continue
            seq, began = src.seq, time.monotonic()
            self._timed_publish(lambda now: motion.frame(self.keyframes.latest(), src))
            self._stop.wait(max(0.0, began + 1.0 / self.fps - time.monotonic()))  # never above the output rate
