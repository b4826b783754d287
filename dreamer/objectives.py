"""Objectives: what a dream step maximises, as values with arithmetic.

    class_logits({980: 1.0}) + 0.3 * layer("_blocks.10") - 1e-4 * tv()

Each objective is a function of a `Probe` (one model evaluation of one transformed image,
computed lazily and shared by every term) and carries a readable description for logs.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .classes import Target
from .regularize import total_variation


class LayerTaps:
    """Forward hooks on named layers, registered once and removed on exit (never per call)."""

    def __init__(self, model, names: Iterable[str]):
        self.values: dict[str, torch.Tensor] = {}
        self._handles = [model.layer(n).register_forward_hook(self._saver(n)) for n in sorted(set(names))]

    def _saver(self, name: str):
        def save(_module, _inputs, output):
            self.values[name] = output

        return save

    def __enter__(self) -> "LayerTaps":
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


class Probe:
    """The model looking at one image: logits, layer activations and strip logits, on demand."""

    def __init__(self, model, image: torch.Tensor, taps: LayerTaps | None = None):
        self.model, self.image, self.taps = model, image, taps
        self._logits: torch.Tensor | None = None
        self._strips: dict[tuple[int, int], torch.Tensor] = {}

    def logits(self) -> torch.Tensor:  # (B, 1000)
        if self._logits is None:
            self._logits = self.model(self.image)
        return self._logits

    def layer(self, name: str) -> torch.Tensor:
        self.logits()  # one full forward fills every tap
        return self.taps.values[name]

    def strip_logits(self, i: int, n: int) -> torch.Tensor:
        """Logits of the i-th of n vertical strips (left to right) seen on their own."""
        if (i, n) not in self._strips:
            w = self.image.shape[-1]
            self._strips[(i, n)] = self.model(self.image[..., i * w // n:(i + 1) * w // n])
        return self._strips[(i, n)]


class Objective:
    def __init__(self, fn: Callable[[Probe], torch.Tensor], description: str, layers: frozenset = frozenset()):
        self.fn, self.description, self.layers = fn, description, frozenset(layers)

    def __call__(self, probe: Probe) -> torch.Tensor:
        return self.fn(probe)

    def __repr__(self) -> str:
        return self.description

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda p: self(p) + other(p), f"{self} + {other}", self.layers | other.layers)

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    def __mul__(self, k: float) -> "Objective":
        return Objective(lambda p: k * self(p), f"{k:g} * ({self})", self.layers)

    __rmul__ = __mul__


class _ClassWeights:
    """Class indices and weights as tensors, built once and kept per device (not every step)."""

    def __init__(self, weights: dict[int, float]):
        self.idx = torch.tensor(list(weights))
        self.w = torch.tensor(list(weights.values()))
        self._on: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def score(self, logits: torch.Tensor, sharpness: float) -> torch.Tensor:
        key = (logits.device, logits.dtype)
        if key not in self._on:
            self._on[key] = (self.idx.to(logits.device), self.w.to(logits.device, logits.dtype))
        idx, w = self._on[key]
        score = (logits[:, idx] * w).sum(-1)
        if sharpness:  # push the others down too: the picture must be *this* class, not any class
            score = score - sharpness * torch.logsumexp(logits, -1)
        return score.mean()


def class_logits(weights: dict[int, float], sharpness: float = 0.0, label: str | None = None) -> Objective:
    """Weighted sum of class logits; `sharpness` > 0 subtracts that much log-sum-exp of all logits."""
    text = label or " + ".join(f"{w:.2g}*class{i}" for i, w in weights.items())
    classes = _ClassWeights(weights)
    return Objective(lambda p: classes.score(p.logits(), sharpness), f"logits[{text}]")


class _Parts:
    """Each part of a target scored by its strongest member (log-sum-exp of its classes'
    logits), the parts averaged. For a single class that is its logit, so a class or a mix of
    classes is the plain mean of their logits; a group ("dog", 118 breeds) lets one member win
    and be drawn whole, where the mean of all 118 was a mush no breed won (named blind as a
    dog 0 of 2, docs/quality.md "Groups")."""

    def __init__(self, parts):
        self.parts = [torch.tensor(list(members)) for _, members in parts]
        self._on: dict = {}

    def score(self, logits: torch.Tensor, sharpness: float) -> torch.Tensor:
        if logits.device not in self._on:
            self._on[logits.device] = [idx.to(logits.device) for idx in self.parts]
        parts = self._on[logits.device]
        score = sum(torch.logsumexp(logits[:, idx], -1) for idx in parts) / len(parts)
        if sharpness:
            score = score - sharpness * torch.logsumexp(logits, -1)
        return score.mean()


def target(t: Target, sharpness: float = 0.0) -> Objective:
    parts = _Parts(t.parts)
    return Objective(lambda p: parts.score(p.logits(), sharpness), f"logits[{t.label}]")


def spatial_split(t: Target, sharpness: float = 0.0) -> Objective:
    """Each part of "A + B" dreamed in its own vertical strip, as the 2015 stream did."""
    n = len(t.parts)
    if n < 2:
        return target(t, sharpness)
    parts = [_ClassWeights({c: 1 / len(members) for c in members}) for _, members in t.parts]

    def fn(p: Probe) -> torch.Tensor:
        return sum(part.score(p.strip_logits(i, n), sharpness) for i, part in enumerate(parts)) / n

    return Objective(fn, f"split[{t.label}]")


def layer(name: str) -> Objective:
    """Classic DeepDream: amplify whatever the layer sees (mean squared activation)."""
    return Objective(lambda p: p.layer(name).pow(2).mean(), f"layer[{name}]", frozenset([name]))


def channel(name: str, index: int) -> Objective:
    return Objective(lambda p: p.layer(name)[:, index].mean(), f"channel[{name}:{index}]", frozenset([name]))


def tv() -> Objective:
    """Total variation of the probed image; subtract a little of it to calm pixel noise."""
    return Objective(lambda p: total_variation(p.image), "tv")
