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
    if x.device.type == "cpu" and x.dtype == torch.float32 and not (torch.is_grad_enabled() and x.requires_grad):
        kn = k.numpy()
        hwc = [cv2.sepFilter2D(np.ascontiguousarray(img.permute(1, 2, 0).numpy()), -1, kn, kn,
                               borderType=cv2.BORDER_REFLECT_101).reshape(img.shape[1], img.shape[2], -1)
               for img in x]
        return torch.from_numpy(np.stack(hwc)).permute(0, 3, 1, 2).contiguous()
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
    """
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


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours: a prior against pixel noise."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
