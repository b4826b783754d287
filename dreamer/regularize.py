"""Image transforms and gradient conditioning: what makes a dream look like a picture.

`random_view` is what a dream step sees: the image jittered, zoomed, rotated and (for an
octave) downscaled, in one resampling, with randomness from a `torch.Generator` so a
seeded loop is deterministic. Gradient conditioners turn a raw pixel gradient into a step
direction; `affine` and `gaussian_blur` also serve the per-frame motion.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def affine(x: torch.Tensor, scale: float = 1.0, angle_deg: float = 0.0,
           shift: tuple[float, float] = (0.0, 0.0), out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Zoom by `scale` (>1 magnifies), rotate and shift (fractions of the size) about the centre.

    Edges are filled by reflection so a zoom-out never shows black borders.
    """
    b, _, h, w = x.shape
    a = math.radians(angle_deg)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    # affine_grid works in [-1, 1] coordinates, so the rotation must respect the aspect ratio.
    theta = torch.tensor([[cos, -sin * h / w, 2 * shift[0]],
                          [sin * w / h, cos, 2 * shift[1]]], dtype=x.dtype, device=x.device)
    oh, ow = out_size or (h, w)
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, x.shape[1], oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _cpu_fast_path(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) -> (H, W, B*C) float32 for OpenCV: the batch rides along as channels.

    A channels-last image of one (the dream's layout on the CPU) is already HWC: no copy.
    """
    b, c, h, w = x.shape
    return np.ascontiguousarray(x.detach().permute(2, 3, 0, 1).reshape(h, w, b * c).numpy())


def _from_hwc(a: np.ndarray, b: int) -> torch.Tensor:
    """The inverse of `_to_hwc`, without a copy: for b = 1 the result is channels-last."""
    h, w = a.shape[:2]  # OpenCV drops a channel axis of 1: reshape puts it back
    return torch.from_numpy(a.reshape(h, w, b, -1)).permute(2, 3, 0, 1)


def random_view(jitter_px: int, scales: tuple[float, float], degrees: float,
                gen: torch.Generator) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """Jitter + random zoom + rotation + the octave's downscale in one `grid_sample`.

    One resampling instead of three (roll, resize, affine): fewer passes forward and back.
    Downscales stay at or above 0.5, where bilinear sampling of a blurred image needs no
    extra antialiasing.
    """

    def apply(x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        h, w = x.shape[-2:]
        dx, dy = torch.randint(-jitter_px, jitter_px + 1, (2,), generator=gen).tolist()
        scale, angle = _uniform(gen, *scales), _uniform(gen, -degrees, degrees)
        out = (max(8, round(h * factor)), max(8, round(w * factor)))
        return affine(x, scale, angle, (dx / w, dy / h), out_size=out)

    return apply


def gaussian_kernel(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected edges.

    On the CPU, outside autograd, OpenCV's sepFilter2D does it ~10x faster than a 3-channel
    depthwise conv (which falls off oneDNN's fast path); elsewhere two depthwise passes.
    """
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma, x.dtype, x.device)
    if _cpu_fast_path(x) and not (torch.is_grad_enabled() and x.requires_grad):
        kn = k.numpy()
        return _from_hwc(cv2.sepFilter2D(_to_hwc(x), -1, kn, kn, borderType=cv2.BORDER_REFLECT_101), x.shape[0])
    c = x.shape[1]
    r = k.numel() // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def normalize_gradient(g: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale so the mean absolute value is 1: step sizes stop depending on the logit's scale."""
    return g / (g.abs().mean() + eps)


def laplacian_normalize(g: torch.Tensor, levels: int = 4, eps: float = 1e-8) -> torch.Tensor:
    """Split the gradient into a Laplacian pyramid and give every band the same energy.

    Raw gradients are dominated by pixel-scale noise; equalising the bands lets coarse
    structure (whole objects) grow as fast as texture. This is the trick from the original
    DeepDream notebook, and the main reason our dreams hold together at large scale.
    On the CPU, outside autograd, OpenCV does the same arithmetic in a quarter of the time
    (the torch version is ~60 small ops).
    """
    if _cpu_fast_path(g) and not g.requires_grad:
        return _laplacian_normalize_cv2(g, levels, eps)
    bands = []
    low = g
    for _ in range(levels - 1):
        if min(low.shape[-2:]) < 8:
            break
        down = F.avg_pool2d(low, 2, ceil_mode=True)
        up = F.interpolate(down, size=low.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(low - up)
        low = down
    bands.append(low)
    out = bands[-1] / (bands[-1].pow(2).mean().sqrt() + eps)
    for band in reversed(bands[:-1]):
        out = F.interpolate(out, size=band.shape[-2:], mode="bilinear", align_corners=False)
        out = out + band / (band.pow(2).mean().sqrt() + eps)
    return normalize_gradient(out, eps)


def _laplacian_normalize_cv2(g: torch.Tensor, levels: int, eps: float) -> torch.Tensor:
    """`laplacian_normalize` with OpenCV: 2x2 means down (an odd edge row or column is
    repeated, as avg_pool's ceil_mode averages what is there), bilinear up."""
    def rms(a: np.ndarray) -> float:
        return cv2.norm(a, cv2.NORM_L2) / math.sqrt(a.size) + eps

    def resize(a: np.ndarray, hw: tuple[int, int], how: int) -> np.ndarray:
        return cv2.resize(a, hw[::-1], interpolation=how).reshape(*hw, -1)

    bands, low = [], _to_hwc(g)
    for _ in range(levels - 1):
        h, w = low.shape[:2]
        if min(h, w) < 8:
            break
        even = cv2.copyMakeBorder(low, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE).reshape(h + h % 2, w + w % 2, -1)
        down = resize(even, ((h + 1) // 2, (w + 1) // 2), cv2.INTER_AREA)
        bands.append(low - resize(down, (h, w), cv2.INTER_LINEAR))
        low = down
    bands.append(low)
    out = bands[-1] / rms(bands[-1])
    for band in reversed(bands[:-1]):
        out = resize(out, band.shape[:2], cv2.INTER_LINEAR) + band / rms(band)
    out /= cv2.norm(out, cv2.NORM_L1) / out.size + eps
    return _from_hwc(out, g.shape[0])


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours: a prior against pixel noise."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
