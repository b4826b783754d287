import numpy as np
import torch

from dreamer import objectives as obj
from dreamer.classes import parse
from dreamer import regularize as reg
from dreamer.loop import Dreamer, DreamSettings, motion_pose

SMALL = dict(size=(64, 48), steps=2)


def _frames(model, n, seed, **kw):
    d = Dreamer(model, DreamSettings(**{**SMALL, **kw}), seed=seed)
    d.set_target(parse("volcano"))
    return [d.frame() for _ in range(n)]


def test_frames_are_uint8_rgb_of_the_requested_size(lite0):
    (f,) = _frames(lite0, 1, 0)
    assert f.shape == (48, 64, 3) and f.dtype == np.uint8


def test_same_seed_same_dream_other_seed_other_dream(lite0):
    a, b, c = _frames(lite0, 3, 7), _frames(lite0, 3, 7), _frames(lite0, 3, 8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[-1], c[-1])


def test_dreaming_raises_the_target_logit(lite0):
    d = Dreamer(lite0, DreamSettings(size=(64, 64), steps=3, zoom_per_s=0.0), seed=0)
    d.set_target(parse("volcano"))
    with torch.no_grad():
        before = float(lite0(d.image)[0, 980])
    for _ in range(4):
        d.frame()
    with torch.no_grad():
        assert float(lite0(d.image)[0, 980]) > before + 2


def test_target_change_blends_over_blend_s_seconds_whatever_the_frame_rate(lite0):
    probe = obj.Probe(lite0, torch.rand(1, 3, 32, 32))
    logits = probe.logits()[0]
    for dt, frames in ((0.5, 3), (0.25, 5)):  # 1 s of fade in 2 frames or in 4
        d = Dreamer(lite0, DreamSettings(**SMALL, blend_s=1.0), seed=0)
        d.set_target(parse("volcano"))
        d.frame(dt)
        d.set_target(parse("jellyfish"))
        seen = []
        for _ in range(frames):
            value = d.current_objective()(probe)
            seen.append(float((value - logits[980]) / (logits[107] - logits[980])))  # share of jellyfish
            d.frame(dt)
        assert np.allclose(seen, np.arange(frames) * dt, atol=1e-4)
        assert d.current_objective() is d._objective


def test_start_image_is_used(lite0):
    start = torch.zeros(3, 30, 40)
    start[0] = 1.0  # pure red
    d = Dreamer(lite0, DreamSettings(size=(64, 48), steps=0, blur_per_s=0, zoom_per_s=0), seed=0, start=start)
    f = d.frame()
    assert f[..., 0].mean() > 250 and f[..., 1].mean() < 5


def test_layer_mode_dreams_and_releases_hooks(lite0):
    d = Dreamer(lite0, DreamSettings(**SMALL, mode="layer", layer=lite0.layers[2]), seed=0)
    d.set_target(parse("volcano"))
    assert "layer" in repr(d.current_objective())
    d.frame()
    d.close()
    assert len(lite0.layer(lite0.layers[2])._forward_hooks) == 0


def test_motion_is_per_second_and_two_spans_make_the_pose_of_their_sum():
    s = DreamSettings(zoom_per_s=0.05, spin_deg_per_s=3.0, drift_per_s=(0.01, -0.02))
    assert motion_pose(s, 1.0) == (1.05, 3.0, (0.01, -0.02))
    assert motion_pose(s, 0.0) == (1.0, 0.0, (0.0, 0.0))
    for a, b in ((0.2, 0.3), (0.04, 1.96), (1 / 3, 2 / 3)):
        (sa, ra, _), (sb, rb, _), (sab, rab, _) = motion_pose(s, a), motion_pose(s, b), motion_pose(s, a + b)
        assert abs(sa * sb - sab) < 1e-12 and abs(ra + rb - rab) < 1e-12


def test_a_frame_is_blurred_by_what_its_seconds_add_up_to(lite0):
    """Blurs compose by adding variances: dt seconds of blur_per_s is sigma blur_per_s * sqrt(dt)."""
    d = Dreamer(lite0, DreamSettings(size=(64, 48), steps=0, zoom_per_s=0.0, blur_per_s=0.8), seed=0)
    d.frame()
    before = d.image.clone()
    d.frame(0.25)
    assert torch.equal(d.image, reg.gaussian_blur(before, 0.4))
