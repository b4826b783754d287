"""Image transforms and gradient conditioning: what makes a dream look like a picture.

`random_view` is what a dream step sees: the image jittered, zoomed, rotated and (for an
octave) downscaled, in one resampling, with randomness from a `torch.Generator` so a
seeded loop is deterministic. Gradient conditioners turn a raw pixel gradient into a step
direction; `affine` and `gaussian_blur` also serve the per-frame motion.

On the CPU the blur, the pyramid and the colour transform run in OpenCV (a quarter of the
torch versions' time); on a GPU, in torch. `torch_ops()` makes the CPU take the torch
versions too: the GPU's arithmetic, checked on a machine without one.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator

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
    theta = to_device(torch.tensor([[cos, -sin * h / w, 2 * shift[0]],
                                    [sin * w / h, cos, 2 * shift[1]]], dtype=x.dtype), x.device)
    oh, ow = out_size or (h, w)
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, x.shape[1], oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A few numbers made on the host, to `device` without waiting for it: a blocking copy to
    a GPU waits for all the work queued before it (a host round trip every step)."""
    return t if t.device == device else t.to(device, non_blocking=True)


_local = threading.local()


@contextlib.contextmanager
def torch_ops() -> Iterator[None]:
    """Within it (on this thread), the CPU runs the torch versions a GPU runs instead of OpenCV."""
    before = getattr(_local, "torch_only", False)
    _local.torch_only = True
    try:
        yield
    finally:
        _local.torch_only = before


def _cpu_fast_path(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and not getattr(_local, "torch_only", False)


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


def random_view(jitter_px: int, scales: tuple[float, float], degrees: float, gen: torch.Generator,
                max_pixels: int = 0) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """What one dream step shows the network: the picture at `factor` of its size.

    factor <= 1: the whole picture, shrunk; factor > 1: a random part of it, magnified.
    Magnified views are what make a dream hold up on a screen that shows it 3-4x: texture
    that only reads at one pixel scale stops paying off. With `max_pixels`, factor 1.0 means
    the whole picture fitted into that many pixels (a 480x270 stream is seen at 2/3 of its
    size, a 224x224 still as it is): whatever the frame's size, the network composes the
    whole picture at 1.0, and a step costs at most `max_pixels`. Random jitter, zoom
    (`scales`) and rotation ride along in the same single resampling. Shrinks below 0.75 are
    antialiased: the picture is mean-pooled first (exact and cheap), so the network never
    sees aliased pixel grain it could grow into rainbow texture.
    """

    def apply(x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        h, w = x.shape[-2:]
        dx, dy = torch.randint(-jitter_px, jitter_px + 1, (2,), generator=gen).tolist()
        zoom, angle = _uniform(gen, *scales), _uniform(gen, -degrees, degrees)
        fit = min(1.0, math.sqrt(max_pixels / (h * w))) if max_pixels else 1.0
        part = fit * min(factor, 1.0)  # the output's size, as a fraction of the picture's
        zoom *= max(factor, 1.0)  # > 1: the output shows 1/zoom of the picture
        out = (max(8, round(h * part)), max(8, round(w * part)))
        shift = (dx / w, dy / h)
        if zoom > 1:  # a part of the picture: let it land anywhere
            room = (1 - 1 / zoom) / 2
            shift = (shift[0] + _uniform(gen, -room, room), shift[1] + _uniform(gen, -room, room))
        pool = 1  # network pixels per picture pixel are part * zoom
        while part * zoom * pool < 0.75 and min(h, w) >= 16 * pool:
            pool *= 2
        if pool > 1:  # normalised coordinates: the pooled picture samples the same places
            x = F.avg_pool2d(x, pool, ceil_mode=True)
        return affine(x, zoom, angle, shift, out_size=out)

    return apply


@functools.lru_cache(maxsize=64)
def gaussian_kernel(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Cached (read only): the gradient's blur every step would otherwise build its kernel
    anew, four small launches on a GPU each time."""
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


def laplacian_normalize(g: torch.Tensor, levels: int = 4, eps: float = 1e-8, tilt: float = 1.0,
                        per_channel: bool = False) -> torch.Tensor:
    """Split the gradient into a Laplacian pyramid and give every band a set energy.

    Raw gradients are dominated by pixel-scale noise; equalising the bands lets coarse
    structure (whole objects) grow as fast as texture. This is the trick from the original
    DeepDream notebook. `tilt` > 1 tips the balance further toward coarse bands (band k,
    counted from the finest, gets tilt^k): a picture shown magnified needs its energy in
    shapes, not in the finest band. `per_channel` normalises each channel on its own (for
    a gradient in colour axes: chroma keeps its own step size instead of drowning).
    On the CPU, outside autograd, OpenCV does the same arithmetic in a quarter of the time
    (the torch version is ~60 small ops).
    """
    if _cpu_fast_path(g) and not g.requires_grad:
        return _laplacian_normalize_cv2(g, levels, eps, tilt, per_channel)
    dims = (2, 3) if per_channel else (0, 1, 2, 3)  # per channel of each picture, as the OpenCV path

    def unit(band: torch.Tensor) -> torch.Tensor:
        return band / (band.pow(2).mean(dims, keepdim=True).sqrt() + eps)

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
    k = len(bands) - 1
    out = unit(bands[-1]) * tilt ** k
    for band in reversed(bands[:-1]):
        k -= 1
        out = F.interpolate(out, size=band.shape[-2:], mode="bilinear", align_corners=False)
        out = out + unit(band) * tilt ** k
    return normalize_gradient(out, eps)


def _laplacian_normalize_cv2(g: torch.Tensor, levels: int, eps: float, tilt: float,
                             per_channel: bool) -> torch.Tensor:
    """`laplacian_normalize` with OpenCV: 2x2 means down (an odd edge row or column is
    repeated, as avg_pool's ceil_mode averages what is there), bilinear up."""
    def unit(a: np.ndarray) -> np.ndarray:
        if per_channel:
            return a / (np.sqrt(np.square(a).mean((0, 1))) + eps)
        return a / (cv2.norm(a, cv2.NORM_L2) / math.sqrt(a.size) + eps)

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
    k = len(bands) - 1
    out = unit(bands[-1]) * np.float32(tilt ** k)
    for band in reversed(bands[:-1]):
        k -= 1
        out = resize(out, band.shape[:2], cv2.INTER_LINEAR) + unit(band) * np.float32(tilt ** k)
    out /= cv2.norm(out, cv2.NORM_L1) / out.size + eps
    return _from_hwc(out, g.shape[0])


def _mix_channels(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """out[:, d] = sum_c x[:, c] * m[c, d]. On the CPU, outside autograd, one OpenCV pass over
    the HWC view (torch's einsum becomes a batched matmul: 2 ms a step at 480x270)."""
    if _cpu_fast_path(x) and x.shape[0] == 1 and not x.requires_grad:
        return _from_hwc(cv2.transform(_to_hwc(x), m.T.numpy().astype(np.float32)), 1)
    return torch.einsum("bchw,cd->bdhw", x, m.to(x.dtype))


def colour_axes(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W) -> the same in colour axes (columns of the orthonormal `basis`)."""
    return _mix_channels(x, basis)


def from_colour_axes(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return _mix_channels(x, basis.T)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours: a prior against pixel noise."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
