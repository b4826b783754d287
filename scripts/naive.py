"""The naive reference dream step, written plainly: what a first attempt looks like.

Eager fp32, NCHW, class logit, random jitter, a blurred and normalised gradient, no octaves,
no pyramid. `scripts/bench.py` times it against the project's loop, in the same run.
"""
import time

import torch
import torch.nn.functional as F


def naive_step(model, image, class_index, gen, lr=0.03, jitter=8):
    dx, dy = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
    x = torch.roll(image, (dy, dx), (2, 3)).detach().requires_grad_(True)
    score = model(x)[0, class_index]
    score.backward()
    g = torch.roll(x.grad, (-dy, -dx), (2, 3))
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=g.device)  # 5-tap binomial blur
    k = (k[:, None] * k[None, :] / 256).expand(3, 1, 5, 5)
    g = F.conv2d(F.pad(g, (2, 2, 2, 2), mode="reflect"), k, groups=3)
    g = g / (g.abs().mean() + 1e-8)
    return (image + lr * g).clamp(0, 1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def naive_steps_per_s(model, size, device, seconds: float) -> float:
    """The naive step on a (w, h) noise image: steps a second after two warm-up steps."""
    gen = torch.Generator().manual_seed(0)
    w, h = size
    image = torch.rand(1, 3, h, w, device=device)
    for _ in range(2):
        image = naive_step(model, image, 980, gen)
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        image = naive_step(model, image, 980, gen)
        n += 1
    sync(device)
    return n / (time.perf_counter() - t0)
