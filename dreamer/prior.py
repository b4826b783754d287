"""A natural-image prior: how unlike a photo a picture is, as an energy to push down.

Fitted on real photos (`scripts/fit_prior.py`) and shipped as `dreamer/data/natural_prior.npz`:
- the photos' colour axes (PCA of RGB): luminance and two opponent axes, with their spreads;
  the dream steps in this space, so colour can stay strong where luminance detail is fine;
- a PCA whitening of 8x8x3 patches: in whitened units a photo's patch coefficients have unit
  variance, so detail photos rarely have (rainbow pixel grain above all) costs the most;
- a Student-t on the whitened coefficients: heavy tails, so a few strong edges are cheap and
  dense texture everywhere is expensive. `energy` is the mean of log(1 + z^2 / (nu s^2)).

The energy is taken on mean-pooled copies of the picture (every pool in `pools` that leaves
room for patches), so coarse structure must look natural too; the coarse copies are nearly
free. At full scale the patches are laid on a grid of 8 with a random offset each call, so
one matrix product covers the picture and, over a few steps, every alignment: at 480x270
that is ~2k patches, a 192x192 product, well under a millisecond.

    prior = NaturalPrior.load()
    e = prior.energy(image, gen)          # (1, 3, H, W) in [0, 1] -> scalar, differentiable
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 8
POOLS = (1, 2, 4, 8, 16)  # mean-pooled copies the energy is taken on (those with room for patches)
FILE = "natural_prior.npz"


@dataclass
class PriorFit:
    """What the fit produces, saved as one small .npz (float32, ~150 KB)."""

    colour_basis: np.ndarray  # (3, 3) columns: luminance first, then the opponent axes
    colour_std: np.ndarray  # (3,) spread of photos along each axis, [0, 1] units
    patch_mean: np.ndarray  # (192,) mean 8x8x3 patch, ordered as F.pixel_unshuffle orders it
    whiten: np.ndarray  # (192, 192) rows: PCA components scaled by 1/std
    nu: float  # Student-t degrees of freedom
    scale: float  # Student-t scale of the whitened coefficients

    def save(self, path) -> None:
        f32 = {k: np.asarray(v, np.float32) for k, v in vars(self).items()}  # float32: half the file
        np.savez(path, **f32)

    @classmethod
    def read(cls, path) -> "PriorFit":
        with np.load(path) as f:
            return cls(f["colour_basis"], f["colour_std"], f["patch_mean"], f["whiten"], float(f["nu"]),
                       float(f["scale"]))


# -- fitting (numpy; scripts/fit_prior.py gathers the photos) ------------------------------------
def sample_patches(rgb: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random 8x8 patches of an (H, W, 3) float image -> (n, 192) in pixel_unshuffle order (c, y, x)."""
    h, w = rgb.shape[:2]
    ys, xs = rng.integers(0, h - PATCH + 1, n), rng.integers(0, w - PATCH + 1, n)
    idx = np.arange(PATCH)
    patches = rgb[ys[:, None, None] + idx[None, :, None], xs[:, None, None] + idx[None, None, :]]  # (n, 8, 8, 3)
    return patches.transpose(0, 3, 1, 2).reshape(n, -1)


def fit_student_t(z: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (nu, scale) of a zero-mean Student-t, on a grid (z is 1-D)."""
    best, arg = -np.inf, (1.0, 1.0)
    z2 = z.astype(np.float64) ** 2
    for nu in np.geomspace(0.2, 20, 41):
        for s in np.geomspace(0.05, 2.0, 41):
            t = nu * s * s
            ll = (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(math.pi * t)
                  - (nu + 1) / 2 * np.log1p(z2 / t).mean())
            if ll > best:
                best, arg = ll, (float(nu), float(s))
    return arg


def fit(photos: Iterable[np.ndarray], patches_per_photo: int = 4000, seed: int = 0,
        floor: float = 1e-6) -> PriorFit:
    """Fit on (H, W, 3) uint8 photos, each also seen at 1/2 and 1/4 size (the pooled copies'
    statistics). Eigenvalues are floored at `floor` x the largest, for numerical safety only:
    a floor of 1e-4 flattened 118 of the 192 components and with them the difference between
    fine colour and fine grey detail (chroma grain cost 2x grey grain per unit amplitude
    instead of 22x)."""
    rng = np.random.default_rng(seed)
    pixels, patches = [], []
    for rgb in photos:
        img = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].double() / 255
        for k in (1, 2, 4):
            scaled = F.avg_pool2d(img, k) if k > 1 else img
            arr = scaled[0].permute(1, 2, 0).numpy()
            if min(arr.shape[:2]) < 4 * PATCH:
                continue
            patches.append(sample_patches(arr, patches_per_photo // k, rng))
            pixels.append(arr.reshape(-1, 3)[rng.integers(0, arr.shape[0] * arr.shape[1], 20000)])
    evals, evecs = np.linalg.eigh(np.cov(np.concatenate(pixels), rowvar=False))
    order = np.argsort(evals)[::-1]
    basis = evecs[:, order] * np.sign(evecs[:, order].sum(0, keepdims=True) + 1e-12)  # luminance positive
    colour_std = np.sqrt(np.maximum(evals[order], 0))
    x = np.concatenate(patches)
    mean = x.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    evals = np.maximum(evals, floor * evals.max())
    whiten = (evecs / np.sqrt(evals)).T  # rows: components / std
    z = ((x[:20000] - mean) @ whiten.T).ravel()
    nu, scale = fit_student_t(z[rng.permutation(z.size)[:200000]])
    return PriorFit(basis, colour_std, mean, whiten, nu, scale)


# -- using it (torch) ----------------------------------------------------------------------------
class NaturalPrior:
    def __init__(self, fit: PriorFit):
        self.fit = fit
        self.colour_basis = torch.tensor(fit.colour_basis, dtype=torch.float32)  # (3, 3)
        self._mean = torch.tensor(fit.patch_mean, dtype=torch.float32)
        self._whiten = torch.tensor(fit.whiten, dtype=torch.float32)
        self._t = fit.nu * fit.scale ** 2
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def load(cls) -> "NaturalPrior":
        with resources.as_file(resources.files("dreamer") / "data" / FILE) as path:
            return cls(PriorFit.read(path))


    def _params(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on:
            self._on[device] = (self._mean.to(device), self._whiten.to(device))
        return self._on[device]

    def _offsets(self, gen: torch.Generator | None) -> tuple[int, int]:
        return tuple(torch.randint(0, PATCH, (2,), generator=gen).tolist()) if gen is not None else (0, 0)

    def energy(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Mean Student-t energy of the whitened 8x8 patches of x and its pooled copies.

        (B, 3, H, W) in [0, 1] -> scalar, differentiable. `gen` picks each copy's grid
        offset (None: offset 0). The reference; `energy_and_gradient` is the fast path.
        """
        mean, whiten = self._params(x.device)
        xp, terms = x.float(), []
        for pool in POOLS:
            if pool > 1:
                xp = F.avg_pool2d(xp, 2)  # 2x2 means of 2x2 means: avg_pool2d(x, pool) exactly
            h, w = xp.shape[-2:]
            if min(h, w) < 2 * PATCH:
                break
            oy, ox = self._offsets(gen)
            hh, ww = (h - oy) // PATCH * PATCH, (w - ox) // PATCH * PATCH
            p = F.pixel_unshuffle(xp[..., oy:oy + hh, ox:ox + ww], PATCH)  # (B, 192, h/8, w/8)
            p = p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]) - mean  # (patches, 192)
            z = p @ whiten.T
            terms.append(torch.log1p(z.square() / self._t).mean())
        return torch.stack(terms).mean()

    def gradient(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The gradient of `energy` with respect to x (the same numbers, same offsets).

        For one picture it is written out by hand, without autograd: autograd's zero-filled,
        copied and pooled-back buffers cost 20 ms a step at 224x224 (as much as the network),
        this ~2 ms. It stays in torch (not numpy) on purpose: numpy's BLAS keeps a thread pool
        of its own, and its threads spinning beside torch's cost a third of the dream rate.
        """
        if x.shape[0] != 1:
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                return torch.autograd.grad(self.energy(x, gen), x)[0]
        mean, whiten = self._params(x.device)
        with torch.no_grad():
            xp = x.detach().float()[0].permute(1, 2, 0)  # (H, W, 3): a view of a channels-last picture
            grads = []
            for pool in POOLS:
                if pool > 1:  # exact 2x2 means of an even-sized crop
                    h2, w2 = xp.shape[0] // 2, xp.shape[1] // 2
                    xp = xp[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, 3).mean((1, 3))
                h, w = xp.shape[:2]
                if min(h, w) < 2 * PATCH:
                    break
                oy, ox = self._offsets(gen)
                ny, nx = (h - oy) // PATCH, (w - ox) // PATCH
                crop = xp[oy:oy + ny * PATCH, ox:ox + nx * PATCH]
                # (ny, 8, nx, 8, 3) -> patches in pixel_unshuffle order: channel, row, column
                p = crop.reshape(ny, PATCH, nx, PATCH, 3).permute(0, 2, 4, 1, 3).reshape(ny * nx, -1)
                z = (p - mean) @ whiten.T
                dz = z * (2 / z.numel()) / (self._t + z * z)  # d mean(log1p(z^2 / t)) / dz
                dp = (dz @ whiten).reshape(ny, nx, 3, PATCH, PATCH)  # back from patches to pixels
                g = torch.zeros_like(xp)
                g[oy:oy + ny * PATCH, ox:ox + nx * PATCH] = dp.permute(0, 3, 1, 4, 2).reshape(ny * PATCH, nx * PATCH, 3)
                grads.append(g)
            total = grads[-1]
            for g in reversed(grads[:-1]):  # each 2x2 mean hands a quarter of its gradient to each pixel
                h2, w2 = total.shape[:2]
                g[:2 * h2, :2 * w2] += total.repeat_interleave(2, 0).repeat_interleave(2, 1) / 4
                total = g
            return (total / len(grads)).permute(2, 0, 1)[None].to(x.dtype)  # channels-last, like the picture


@functools.cache
def natural_prior() -> NaturalPrior:
    """The shipped prior, read once per process."""
    return NaturalPrior.load()
