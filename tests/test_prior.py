"""The natural-image prior: the shipped fit loads, refits the same, and its energy means what it says."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamer.classes import parse
from dreamer.loop import Dreamer, DreamSettings
from dreamer.prior import PATCH, NaturalPrior, PriorFit, fit, natural_prior, sample_patches


def photo(name: str, size: int = 224) -> torch.Tensor:
    from skimage import data
    rgb = torch.from_numpy(getattr(data, name)().copy()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(rgb, size=(size, size), mode="area")


def test_shipped_prior_loads_with_sane_statistics():
    f = natural_prior().fit
    assert f.colour_basis.shape == (3, 3) and f.whiten.shape == (192, 192) and f.patch_mean.shape == (192,)
    assert np.allclose(f.colour_basis.T @ f.colour_basis, np.eye(3), atol=1e-5)  # orthonormal axes
    assert (f.colour_basis[:, 0] > 0.5).all()  # the first axis is luminance
    assert f.colour_std[0] > f.colour_std[1] > f.colour_std[2] > 0
    assert 0.1 < f.nu < 20 and f.scale > 0


def test_the_fit_is_reproducible_and_matches_the_shipped_file():
    from fit_prior import package_photos  # scripts/ is on pytest's path

    refit = fit(package_photos().values(), seed=0)
    shipped = natural_prior().fit
    # whitening rows are eigenvectors (sign is arbitrary): compare the inverse covariance they make
    assert np.allclose(refit.whiten.T @ refit.whiten, shipped.whiten.T @ shipped.whiten, rtol=1e-3, atol=1e-2)
    assert np.allclose(refit.colour_basis, shipped.colour_basis, atol=1e-4)
    assert np.allclose(refit.patch_mean, shipped.patch_mean, atol=1e-5)
    assert (refit.nu, refit.scale) == pytest.approx((shipped.nu, shipped.scale), rel=1e-4)


def test_fit_is_deterministic_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    photos = [(rng.random((64, 80, 3)) * 255).astype(np.uint8) for _ in range(2)]
    a, b = fit(photos, patches_per_photo=500, seed=3), fit(photos, patches_per_photo=500, seed=3)
    assert np.array_equal(a.whiten, b.whiten) and a.nu == b.nu
    a.save(tmp_path / "p.npz")
    back = PriorFit.read(tmp_path / "p.npz")
    assert np.allclose(back.whiten, a.whiten, rtol=1e-6) and back.nu == pytest.approx(a.nu)


def test_patches_are_in_pixel_unshuffle_order():
    img = np.random.default_rng(0).random((16, 16, 3))
    ours = sample_patches(img, 1, np.random.default_rng(5))[0]
    # find the same patch with pixel_unshuffle at its position
    rng = np.random.default_rng(5)  # the same draws sample_patches makes: rows, then columns
    y, x = rng.integers(0, 9, 1)[0], rng.integers(0, 9, 1)[0]
    t = torch.from_numpy(img[y:y + PATCH, x:x + PATCH]).permute(2, 0, 1)[None]
    assert np.allclose(F.pixel_unshuffle(t, PATCH).reshape(-1).numpy(), ours)


def test_colour_grain_costs_far_more_than_grey_grain_and_photos_less_than_either():
    prior = natural_prior()
    gen = torch.Generator().manual_seed(0)
    grey = torch.randn(1, 1, 224, 224, generator=gen).expand(1, 3, -1, -1)
    rgb = torch.randn(1, 3, 224, 224, generator=gen)
    lum = prior.colour_basis[:, 0].view(1, 3, 1, 1)
    chroma = rgb - (rgb * lum).sum(1, keepdim=True) * lum  # the same grain with no luminance in it
    chroma = chroma / chroma.std()
    flat = torch.full((1, 3, 224, 224), 0.5)

    def cost(x: torch.Tensor) -> float:
        return float(prior.energy(x)) - float(prior.energy(flat))

    assert cost(flat + 0.002 * chroma) > 10 * cost(flat + 0.002 * grey)  # per unit of amplitude
    assert float(prior.energy(photo("chelsea"))) < float(prior.energy(flat + 0.1 * chroma))


def test_a_few_steps_down_the_prior_lower_its_energy_on_noise():
    prior = natural_prior()
    gen = torch.Generator().manual_seed(0)
    x = (0.5 + 0.15 * torch.randn(1, 3, 96, 96, generator=gen)).clamp(0, 1)
    energies = [float(prior.energy(x))]
    for _ in range(5):
        g = prior.gradient(x, gen)
        x = (x - 0.005 * g / g.abs().mean()).clamp(0, 1)
        energies.append(float(prior.energy(x)))
    assert all(b < a for a, b in zip(energies, energies[1:])), energies
    assert energies[-1] < 0.97 * energies[0], energies


def test_the_fast_gradient_is_the_energy_gradient():
    prior = natural_prior()
    for size in [(224, 224), (37, 53), (96, 160)]:
        x = torch.rand(1, 3, *size).contiguous(memory_format=torch.channels_last)
        leaf = x.clone().requires_grad_(True)
        (want,) = torch.autograd.grad(prior.energy(leaf, torch.Generator().manual_seed(3)), leaf)
        got = prior.gradient(x, torch.Generator().manual_seed(3))  # the hand-written path
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_dreaming_with_the_prior_leaves_a_more_natural_picture(lite0):
    def energy(weight: float) -> float:
        d = Dreamer(lite0, DreamSettings(size=(96, 96), steps=3, prior_weight=weight), seed=0)
        d.set_target(parse("volcano"))
        for _ in range(4):
            d.frame()
        return float(natural_prior().energy(d.image))

    assert energy(30.0) < energy(0.0)


def test_energy_is_differentiable_and_offsets_cover_the_grid():
    prior = NaturalPrior(natural_prior().fit)
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    prior.energy(x, torch.Generator().manual_seed(0)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
