"""Optical flow and the residual: what keeps a dream stuck to a moving live picture.

A live dream is the source frame plus a residual (what the dream added: dreamed minus
source). When the source moves on, the residual is carried onto the new frame along dense
optical flow, so dreamed detail moves with the thing it grew on instead of staying put while
the scene slides under it. The flow is OpenCV's DIS (ultrafast preset) on grey pictures at a
fraction of the dream's size, in both directions: where forward and backward flow disagree
(something came out from behind something else, a cut, a blur too fast to follow) the residual
fades there instead of smearing. All arithmetic on (H, W, 3) float32 / uint8 arrays.

    flow = Flow()
    carried = flow.carry(residual, from_rgb, to_rgb)  # the residual, moved onto to_rgb
"""
from __future__ import annotations

import functools

import cv2
import numpy as np


class Flow:
    def __init__(self, scale: float = 0.5, max_disagreement_px: float = 1.0, still_px: float = 0.0):
        """`scale`: the flow is computed at this fraction of the pictures' size (motion fields
        are smooth; half size costs a quarter). `max_disagreement_px`: forward-backward
        disagreement, in the pictures' pixels, from which trust falls (to none at 3x it).
        `still_px`: motion below this counts as none, so the residual is not resampled (and
        softened) every frame where the scene stands still."""
        self.scale, self.max_px, self.still_px = scale, max_disagreement_px, still_px
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)  # one per thread: it keeps buffers

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
        return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)

    def backward(self, to_rgb: np.ndarray, from_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow, trust) at the pictures' size: `to_rgb` at x shows what `from_rgb` showed at
        x + flow(x) (pixels, (H, W, 2) float32); trust (H, W) in [0, 1] falls from 1 where the
        flows agree to 0 at `max_disagreement_px` of forward-backward disagreement."""
        g_to, g_from = self._grey(to_rgb), self._grey(from_rgb)
        back = self.dis.calc(g_to, g_from, None)  # to -> from
        fore = self.dis.calc(g_from, g_to, None)  # from -> to
        sh, sw = g_to.shape
        grid = _grid(sh, sw)
        # where a point of `to` came from, then back again: it should land where it started
        there = grid + back
        round_trip = back + cv2.remap(fore, there[..., 0], there[..., 1], cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
        disagreement = np.sqrt((round_trip ** 2).sum(-1)) / self.scale  # in the pictures' pixels
        trust = np.clip(1.5 - disagreement / (2 * self.max_px), 0.0, 1.0)  # 1 up to max_px, 0 from 3x it
        if self.still_px:
            back[np.sqrt((back ** 2).sum(-1)) < self.still_px * self.scale] = 0.0
        h, w = to_rgb.shape[:2]
        if (sh, sw) != (h, w):
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32((w / sw, h / sh))
            trust = cv2.resize(trust, (w, h), interpolation=cv2.INTER_LINEAR)
        return back, trust

    def carry(self, residual: np.ndarray, from_rgb: np.ndarray, to_rgb: np.ndarray) -> np.ndarray:
        """`residual` (which belongs to `from_rgb`) moved along the flow onto `to_rgb`, let go
        where the flow cannot be trusted."""
        back, trust = self.backward(to_rgb, from_rgb)
        h, w = to_rgb.shape[:2]
        there = _grid(h, w) + back
        moved = cv2.remap(residual, there[..., 0], there[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return moved * trust[..., None]


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32: each pixel's own (x, y); made once per size, read-only."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def compose(source: np.ndarray, residual: np.ndarray, mix: float = 1.0) -> np.ndarray:
    """What is shown: the source picture with `mix` of the residual laid over it, uint8."""
    return np.clip(source.astype(np.float32) + np.float32(mix) * residual, 0, 255).astype(np.uint8)


def residual_of(dreamed: np.ndarray, source: np.ndarray) -> np.ndarray:
    """What the dream added to `source`: float32, -255..255."""
    return dreamed.astype(np.float32) - source.astype(np.float32)
