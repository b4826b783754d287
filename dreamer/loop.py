"""The stateful dream loop: one call to `Dreamer.frame()` makes one optimized frame.

Each frame: zoom/rotate/drift the last frame about its centre, blur it lightly (old detail
fades so new detail can grow), then a few gradient-ascent steps toward the current
objective. Each step sees the image through random jitter/scale/rotation and, cycling
through `octaves`, at a reduced scale: coarse steps grow whole objects, fine steps texture,
and a reduced-scale step costs a fraction of a full one. Everything random comes from one
seeded generator.

Time, not frames: a frame is told how many seconds of motion it stands for (`dt`), and the
motion (zoom, spin, drift), the blur and the fade to a new target are set per second, so a
stream looks the same however many frames a second the machine dreams. How many steps a
frame takes is the caller's budget (`stream.spine.engine` fits them to the frame's time; a render
takes `steps`).

    dreamer = Dreamer(load_model(), DreamSettings(size=(480, 270)), seed=0)
    dreamer.set_target(parse("volcano"))
    rgb = dreamer.frame(dt=0.2)  # (H, W, 3) uint8: 0.2 s of motion, then `steps` steps
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from . import objectives as obj
from . import regularize as reg
from .capture import Captured, available
from .classes import Target
from .prior import natural_prior
from .settings import DreamSettings

# The most motion one frame may stand for, in seconds. After a stall (a busy machine, a
# first frame) the picture does not leap: the dream thread moves it on at most this far, and
# the presenter shows a late frame moved on at most this far, so the two meet again without a jump.
MAX_DT_S = 2.0



class Dreamer:
    def __init__(self, model, settings: DreamSettings, seed: int | None = None,
                 start: torch.Tensor | None = None):
        self.model, self.settings = model, settings
        self.device = next(model.parameters()).device
        self.gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
        w, h = settings.size
        if start is None:  # mid-grey plus faint, smooth noise: enough to break symmetry
            start = 0.5 + 0.1 * torch.randn(1, 3, h, w, generator=self.gen)
            if settings.start_blur:  # blur, then scale back up so the blotches stay visible
                start = 0.5 + (reg.gaussian_blur(start, settings.start_blur) - 0.5) * settings.start_blur
        else:  # (3, H', W') or (1, 3, H', W') in [0, 1]
            start = torch.nn.functional.interpolate(start.reshape(1, 3, *start.shape[-2:]).float(), size=(h, w),
                                                    mode="bilinear", antialias=True, align_corners=False)
        # (1, 3, H, W), stored channels-last: the network's layout, and HWC for OpenCV on the CPU
        self.image = start.clamp(0, 1).to(self.device).contiguous(memory_format=torch.channels_last)
        self.view = reg.random_view(settings.jitter_px, settings.scale_range, settings.rotate_deg, self.gen,
                                    settings.view_pixels)
        self.prior = natural_prior() if (settings.prior_weight or settings.colour_steps) else None
        if self.prior is not None:  # on the device once: a copy there every step would wait for the GPU
            self._basis = self.prior.colour_basis.to(self.device)
        self._colour_weights = torch.tensor(settings.colour_steps or (1.0,), device=self.device).view(1, -1, 1, 1)
        precision = settings.precision if settings.precision != "auto" else \
            "bf16" if self.device.type == "cuda" else "fp32"
        self.bf16 = precision == "bf16"
        # The network as a step calls it, captured per view shape when `capture` says so, and
        # eager for objectives that read layers (hooks do not run in a replayed graph).
        capture = available(settings.capture, self.device)
        self._eager_network = self._network_in_precision
        self.network = Captured(self._network_in_precision, capture, "network", grad=True)
        self._direction = Captured(self.direction, capture, "step direction", grad=False)
        self._octave = 0  # where in `octaves` the next view is
        self.frames = 0
        self.steps = 0
        self.target: Target | None = None
        self._objective: obj.Objective | None = None
        self._previous: obj.Objective | None = None
        self._blend = 1.0  # 0 -> only the previous objective, 1 -> only the current one
        self._taps: obj.LayerTaps | None = None

    # -- targets ----------------------------------------------------------------------------
    def objective_for(self, target: Target | None) -> obj.Objective:
        s = self.settings
        if s.mode == "layer" or target is None:
            return obj.layer(s.layer or self.model.layers[len(self.model.layers) // 2])
        if s.split:
            return obj.spatial_split(target, s.sharpness)
        return obj.target(target, s.sharpness)

    def set_target(self, target: Target | None) -> None:
        """Switch to a new target; the old one fades out over `blend_s` seconds of frames."""
        new = self.objective_for(target)
        if self._objective is not None and self.settings.blend_s > 0:
            self._previous, self._blend = self.current_objective(), 0.0
        self.target, self._objective = target, new
        self._retap()

    def current_objective(self) -> obj.Objective:
        if self._objective is None:
            self.set_target(None)
        if self._previous is None or self._blend >= 1.0:
            return self._objective
        return (1.0 - self._blend) * self._previous + self._blend * self._objective

    def _retap(self) -> None:
        if self._taps is not None:
            self._taps.__exit__(None, None, None)
        layers = self._objective.layers | (self._previous.layers if self._previous else frozenset())
        self._taps = obj.LayerTaps(self.model, layers) if layers else None

    def restart_from(self, rgb: np.ndarray) -> None:
        """Go on from this picture ((H, W, 3) uint8 at the dream's size): a live source's frame."""
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
        self.image = x.to(self.device).contiguous(memory_format=torch.channels_last)

    # -- one frame --------------------------------------------------------------------------
    def advance(self, dt: float) -> None:
        """`dt` seconds of the between-frames motion: zoom/spin/drift about the centre, then
        the blur those seconds add up to."""
        s = self.settings
        scale, angle, shift = motion_pose(s, dt)
        if scale != 1.0 or angle or any(shift):
            self.image = reg.affine(self.image, scale, angle, shift)
        self.image = reg.gaussian_blur(self.image, s.blur_per_s * math.sqrt(max(0.0, dt)))

    def _network_in_precision(self, views: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) views -> (B, 1000) fp32 logits; in bf16 autocast when `precision` says so
        (its weight-cast cache off: CUDA graphs cannot capture it, and it lives one call anyway)."""
        if not self.bf16:
            return self.model(views)
        with torch.autocast(self.device.type, torch.bfloat16, cache_enabled=False):
            return self.model(views).float()

    def gradient(self, objective: obj.Objective) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw gradient of `objective` over this step's views, summed, and its value summed
        over them. The views are the next `views_per_step` of `octaves`, drawn in turn; those of
        one shape go through the network as one batch, one backward per batch (so a batch's
        memory is free before the next)."""
        s = self.settings
        scales = [s.octaves[(self._octave + i) % len(s.octaves)] for i in range(s.views_per_step)]
        self._octave = (self._octave + len(scales)) % len(s.octaves)
        x = self.image.detach().requires_grad_(True)
        batches: dict[tuple, list[torch.Tensor]] = {}
        for scale in scales:  # randomness drawn in view order, whatever the batching
            view = self.view(x, scale)
            batches.setdefault(tuple(view.shape), []).append(view)
        network = self.network if self._taps is None else self._eager_network
        grad = total = None
        for views in batches.values():
            batch = views[0] if len(views) == 1 else torch.cat(views)  # (B, 3, h, w)
            # objectives average over a batch: times its size, the sum of the views' values
            value = objective(obj.Probe(network, batch, self._taps)).float() * len(views)
            (g,) = torch.autograd.grad(value, x)
            grad, total = (g, value.detach()) if grad is None else (grad + g, total + value.detach())
        return grad, total

    def step(self, objective: obj.Objective, prior_grad: torch.Tensor | None = None) -> torch.Tensor:
        """One gradient-ascent step, descending `prior_grad` (the prior's energy gradient) too;
        returns the objective's value over the step's views (reading it is a host sync: tests only)."""
        s = self.settings
        grad, value = self.gradient(objective)
        self.steps += 1
        if prior_grad is not None:  # ascend the objective, descend the prior's energy (once per view)
            grad = grad - s.prior_weight * s.views_per_step * prior_grad
        with torch.no_grad():
            self.image = (self.image + s.step_size * self._direction(grad)).clamp_(0, 1)
        return value

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The raw gradient -> a step direction with mean |d| = 1: blurred, split into bands
        (tilted toward coarse ones), and, with `colour_steps`, taken in the photos' colour
        axes, each axis normalised and weighted on its own. That keeps colour strong in
        large areas without the rainbow pixel grain an RGB step grows."""
        s = self.settings
        grad = reg.gaussian_blur(grad, s.gradient_blur)
        if not s.colour_steps:
            return reg.laplacian_normalize(grad, s.pyramid_levels, tilt=s.band_tilt)
        axes = reg.laplacian_normalize(reg.colour_axes(grad, self._basis), s.pyramid_levels, tilt=s.band_tilt,
                                       per_channel=True)
        return reg.normalize_gradient(reg.from_colour_axes(axes * self._colour_weights, self._basis))

    def frame(self, dt: float | None = None, steps: int | None = None,
              interrupt: Callable[[], bool] | None = None) -> np.ndarray | None:
        """Advance by `dt` seconds of motion (default 1 / `fps`; the first frame stays put),
        dream `steps` steps (default `steps`), and return the frame as (H, W, 3) uint8 RGB.

        `interrupt` is asked between steps; when it says yes the frame is abandoned (None):
        a large frame on a CPU takes seconds, a shutdown must not wait for it.
        """
        s = self.settings
        dt = 1.0 / s.fps if dt is None else dt
        if self.frames:
            self.advance(dt)
        objective = self.current_objective()
        # The prior's gradient once a frame, shared by its steps: the picture moves little
        # within a frame, and at 480x270 each evaluation costs ~6 ms (a fifth of a step).
        prior_grad = self.prior.gradient(self.image, self.gen) if s.prior_weight else None
        for _ in range(s.steps if steps is None else steps):
            if interrupt is not None and interrupt():
                return None
            self.step(objective, prior_grad)
        self.frames += 1
        if self._blend < 1.0:
            self._blend = min(1.0, self._blend + dt / s.blend_s)
            if self._blend >= 1.0:
                self._previous = None
                self._retap()
        return to_uint8(self.image)

    def close(self) -> None:
        if self._taps is not None:
            self._taps.__exit__(None, None, None)
            self._taps = None


def motion_pose(settings: DreamSettings, seconds: float) -> tuple[float, float, tuple[float, float]]:
    """(scale, degrees, shift) of `seconds` of the stream's motion. Zoom compounds and spin
    adds up, so two spans of motion make exactly the pose of their sum (drift to first
    order): the dream thread and the presenter, which cut time into different pieces, agree
    on where the picture is."""
    s = settings
    return ((1.0 + s.zoom_per_s) ** seconds, s.spin_deg_per_s * seconds,
            (s.drift_per_s[0] * seconds, s.drift_per_s[1] * seconds))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 on the host."""
    return (image[0].permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
