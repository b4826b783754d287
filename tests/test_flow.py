"""The residual carried along optical flow: it moves with the picture, and lets go at a cut."""
import cv2
import numpy as np
import torch

from dreamer.classes import parse
from dreamer.flow import Flow, compose, residual_of
from dreamer.live import LiveDream, LiveSettings, Residual, motionless
from dreamer.loop import Dreamer, DreamSettings


def texture(seed: int, h=96, w=160) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    blotches = cv2.GaussianBlur(noise, (0, 0), 2.0)  # blotches DIS can follow, stretched to full range
    return ((blotches - blotches.min()) / np.ptp(blotches) * 255).astype(np.uint8)


def shifted(rgb: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(rgb, (dy, dx), axis=(0, 1))


def test_a_residual_moves_with_the_picture():
    src = texture(0)
    moved = shifted(src, 4, 2)  # the scene moved 4 px right, 2 down
    residual = np.zeros(src.shape, np.float32)
    residual[40:50, 60:80] = 100.0  # a dreamed patch on the first frame
    carried = Flow().carry(residual, src, moved)
    inner = (slice(10, -10), slice(10, -10))
    want = shifted(residual, 4, 2)
    assert np.abs(carried - want)[inner].mean() < 3.0  # where it went, give or take a blurred edge
    assert carried[44:48, 66:82].mean() > 80 and carried[40:42, 60:63].mean() < 30


def test_the_residual_is_let_go_at_a_cut():
    flow = Flow()
    a, b = texture(0), texture(1)  # unrelated pictures: the flows cannot agree
    _, trust_cut = flow.backward(b, a)
    _, trust_same = flow.backward(shifted(a, 3, 0), a)
    assert trust_cut.mean() < 0.5 < trust_same[10:-10, 10:-10].mean()
    residual = np.full(a.shape, 100.0, np.float32)
    assert flow.carry(residual, a, b).mean() < 0.5 * flow.carry(residual, a, shifted(a, 3, 0)).mean()


def test_the_residual_halves_every_half_life_and_compose_lays_it_over_the_picture():
    life = Residual(LiveSettings(flow=False, half_life_s=2.0))
    residual = np.full((4, 4, 3), 80.0, np.float32)
    src = np.full((4, 4, 3), 100, np.uint8)
    assert np.allclose(life.carry(residual, src, src, 2.0), 40.0)
    assert np.allclose(life.carry(residual, src, src, 4.0), 20.0)
    dreamed = compose(src, residual)
    assert (dreamed == 180).all() and np.allclose(residual_of(dreamed, src), 80.0)
    assert (compose(src, residual, 0.5) == 140).all()  # half the dream: more of the picture shows


def test_a_live_dream_grows_on_the_source_and_keeps_its_scene(lite0):
    settings = motionless(DreamSettings(size=(96, 64), steps=3, zoom_per_s=0.05, blur_per_s=0.8))
    assert settings.zoom_per_s == 0 and settings.blur_per_s == 0  # the live picture moves by itself
    live = LiveDream(Dreamer(lite0, settings, seed=0), LiveSettings())
    live.set_target(parse("jellyfish"))
    src = texture(3, 64, 96)
    for i in range(4):
        rgb = live.frame(shifted(src, 2 * i, 0), dt=0.2)
    assert rgb.shape == (64, 96, 3)
    assert np.abs(live.residual).mean() > 1.0  # the dream added something
    low = lambda x: cv2.resize(x, (12, 8), interpolation=cv2.INTER_AREA).astype(np.float32)  # noqa: E731
    scene = np.corrcoef(low(rgb).ravel(), low(shifted(src, 6, 0)).ravel())[0, 1]
    assert scene > 0.6  # the source's large shapes still show
    with torch.no_grad():
        before = float(lite0(torch.from_numpy(src).permute(2, 0, 1)[None].float() / 255)[0, 107])
        after = float(lite0(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0, 107])
    assert after > before + 1  # ... and it is dreaming toward the target
