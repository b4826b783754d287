"""A start photo meets the dream's frame: its size, and how it is fitted without a stretch.

    size = size_for(photo.shape[-2:][::-1], pixels=480 * 270)   # the photo's shape, ~that many pixels
    start = fit(photo, size, "crop")                              # (3, h, w): crop | pad | stretch

A photo of another shape than the frame is cropped to the frame's shape by default (the
middle of it kept), padded with its own mean colour (`pad`: all of it kept), or stretched
(`stretch`: a widened face). Without a size of its own, the dream takes the photo's shape.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: these serve processes that never load it
    import torch

FITS = ("crop", "pad", "stretch")
MIN_SIDE, MAX_SIDE = 32, 4096


def size_for(photo: tuple[int, int], pixels: int) -> tuple[int, int]:
    """A (width, height) of the photo's shape with about `pixels` pixels (fewer if the photo
    has fewer: it is not enlarged), even sides (H.264 needs them), each within 32..4096."""
    w, h = photo
    s = min(1.0, math.sqrt(pixels / (w * h)))
    side = lambda v: int(min(MAX_SIDE, max(MIN_SIDE, round(v * s / 2) * 2)))  # noqa: E731
    return side(w), side(h)


def _resize(image: torch.Tensor, w: int, h: int) -> torch.Tensor:
    import torch.nn.functional as F  # here: cover() below serves processes that never load torch

    return F.interpolate(image[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]


def fit(image: torch.Tensor, size: tuple[int, int], how: str = "crop") -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (3, h, w) for `size` (w, h), without changing its shape unless
    `how` is "stretch"."""
    if how not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {how!r}")
    w, h = size
    _, ph, pw = image.shape
    if how == "stretch" or (pw, ph) == (w, h):
        return _resize(image, w, h)
    if how == "crop":  # scale to cover the frame, keep the middle
        s = max(w / pw, h / ph)
        big = _resize(image, max(w, round(pw * s)), max(h, round(ph * s)))
        y, x = (big.shape[1] - h) // 2, (big.shape[2] - w) // 2
        return big[:, y:y + h, x:x + w].contiguous()
    s = min(w / pw, h / ph)  # pad: scale to fit inside, the rest in the photo's mean colour
    small = _resize(image, min(w, round(pw * s)), min(h, round(ph * s)))
    out = image.mean(dim=(1, 2), keepdim=True).expand(3, h, w).clone()
    y, x = (h - small.shape[1]) // 2, (w - small.shape[2]) // 2
    out[:, y:y + small.shape[1], x:x + small.shape[2]] = small
    return out


def shape_note(photo: tuple[int, int], size: tuple[int, int], how: str) -> str:
    """What happened to the photo's shape, in words for the user."""
    (pw, ph), (w, h) = photo, size
    if abs(pw / ph - w / h) < 0.01:
        return f"start image {pw}x{ph} dreamed at {w}x{h}, its own shape"
    done = {"crop": "cropped to", "pad": "padded to", "stretch": "stretched to"}[how]
    other = {"crop": "--fit pad keeps all of it", "pad": "--fit crop fills the frame",
             "stretch": "--fit crop or pad keep its shape"}[how]
    return f"start image {pw}x{ph} {done} {w}x{h} ({other})"


def cover(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A video frame ((H, W, 3) uint8) cropped to the aspect of `size` (w, h), centred, and
    scaled to it: the picture keeps its shape (a live source's frames, as `fit(..., "crop")` a photo)."""
    h, w = rgb.shape[:2]
    tw, th = size
    if w * th > tw * h:  # wider than wanted: crop the sides
        cw = round(h * tw / th)
        rgb = rgb[:, (w - cw) // 2:(w - cw) // 2 + cw]
    elif w * th < tw * h:  # taller: crop top and bottom
        ch = round(w * th / tw)
        rgb = rgb[(h - ch) // 2:(h - ch) // 2 + ch]
    if rgb.shape[1] == tw and rgb.shape[0] == th:
        return np.ascontiguousarray(rgb)
    shrink = rgb.shape[1] > tw
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
