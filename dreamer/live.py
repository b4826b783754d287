"""Dreaming a live picture: a camera, a screen, a video, another stream.

Each frame starts from the newest source frame plus the residual of the last dreamed frame
(what the dream had added) carried onto it along optical flow (`dreamer.flow`), then takes
the frame's gradient steps. So the dream grows on the scene and stays stuck to what moves,
where a dream of the last dreamed frame alone would drift off the scene and a blend without
motion would smear and flicker. The residual fades by half every `half_life_s` where the dream
stops adding to it, and at once where the flow cannot be trusted; `mix` says how much of it
is laid over the live picture when shown. Motion settings (zoom, spin, drift, the blur
between frames) do not apply: the live picture moves by itself.

    live = LiveDream(Dreamer(model, settings, seed=0), LiveSettings())
    live.set_target(parse("jellyfish"))
    rgb = live.frame(source_rgb, dt=0.2, steps=5)  # the dreamed picture, at the dream's size
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from .flow import Flow, residual_of
from .loop import Dreamer
from .settings import LiveSettings


def motionless(settings):
    """The dream settings without their own motion: a live picture moves by itself."""
    return dataclasses.replace(settings, zoom_per_s=0.0, spin_deg_per_s=0.0, drift_per_s=(0.0, 0.0), blur_per_s=0.0)


class Residual:
    """The residual's life between two source frames: carried along the flow, faded with time."""

    def __init__(self, settings: LiveSettings):
        self.s = settings
        self.flow = Flow(settings.flow_scale, settings.max_disagreement_px, settings.still_px) if settings.flow else None

    def carry(self, residual: np.ndarray, from_rgb: np.ndarray, to_rgb: np.ndarray, seconds: float) -> np.ndarray:
        keep = np.float32(0.5 ** (max(0.0, seconds) / self.s.half_life_s))
        if self.flow is None or from_rgb is to_rgb:
            return residual * keep
        return self.flow.carry(residual, from_rgb, to_rgb) * keep


class LiveDream:
    def __init__(self, dreamer: Dreamer, settings: LiveSettings):
        self.dreamer, self.s = dreamer, settings
        self.residual_life = Residual(settings)
        self.source: np.ndarray | None = None  # the source frame the residual belongs to
        self.residual: np.ndarray | None = None  # (H, W, 3) float32
        self.carry_ms = 0.0  # moving average of carrying the residual onto a new source frame

    @property
    def target(self):
        return self.dreamer.target

    def set_target(self, target) -> None:
        self.dreamer.set_target(target)

    def close(self) -> None:
        self.dreamer.close()

    def frame(self, source: np.ndarray, dt: float, steps: int | None = None,
              interrupt: Callable[[], bool] | None = None) -> np.ndarray | None:
        """Dream on `source` ((H, W, 3) uint8 at the dream's size), `dt` seconds after the last
        frame; None if interrupted (the residual is kept as it was)."""
        start = source
        if self.residual is not None:
            t0 = time.perf_counter()
            carried = self.residual_life.carry(self.residual, self.source, source, dt)
            start = np.clip(source.astype(np.float32) + carried, 0, 255).astype(np.uint8)
            self.carry_ms = 0.8 * self.carry_ms + 0.2 * (time.perf_counter() - t0) * 1000
        self.dreamer.restart_from(start)
        rgb = self.dreamer.frame(dt, steps, interrupt)
        if rgb is not None:
            self.source, self.residual = source, residual_of(rgb, source)
        return rgb
