"""The dream's settings, apart from the code that dreams: plain dataclasses and names, no torch,
so that a process that never dreams (a front door, `serve --role front`) reads the same config
without loading the network's libraries. `dreamer.loop` and `dreamer.live` use them.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "efficientnet_lite0"
# the models `--model` offers (dreamer.models.REGISTRY builds each; tests/test_models.py keeps the two alike)
MODEL_NAMES = ("efficientnet_lite0", "efficientnet_lite1", "googlenet", "vgg16", "inception_v3")


@dataclass
class DreamSettings:
    # The defaults were picked with scripts/eval_quality.py (docs/quality.md): pictures that
    # read at 1-1.5x and at half resolution, at >= 4 dreamed frames/s on a 2-core CPU.
    size: tuple[int, int] = (480, 270)  # (width, height)
    steps: int = 5  # gradient steps per frame where no clock sets them (render, eval), and the budget's first guess
    # The frame budget (stream/spine/engine.py): the live dream aims at `fps` dreamed frames a second
    # (never more than the output shows) and fits the steps into each frame's 1/fps seconds:
    # a fast machine takes more, a busy one fewer, never outside [min_steps, max_steps].
    fps: float = 5.0
    min_steps: int = 3
    max_steps: int = 24
    step_size: float = 0.02  # per step, on a gradient normalised to mean |g| = 1, image in [0, 1]
    # the view scales the steps cycle through: < 1 the whole picture shrunk, > 1 a part magnified
    octaves: tuple[float, ...] = (1.0, 0.7, 0.5, 1.5, 2.0)
    # the most pixels one view shows the network: octave 1.0 is the whole picture fitted into
    # them, so a large frame is composed as a whole and a step costs what it does at 320x180
    view_pixels: int = 57_600  # 320x180; 0 = views at the picture's own size
    pyramid_levels: int = 6  # Laplacian bands equalised in the gradient: more bands, bigger shapes
    band_tilt: float = 2.0  # > 1: coarser gradient bands get more of the step (band k: tilt^k)
    # per-axis step sizes in the photos' colour axes (luminance, two opponent axes), here in
    # proportion to the photos' own spread along them; empty: RGB as is (rainbow grain)
    colour_steps: tuple[float, ...] = (1.0, 0.54, 0.34)
    # how hard the natural-image prior's patch energy (dreamer/prior.py) pulls: more natural,
    # softer and less colourful pictures, which the judge and a blind namer read less well (0)
    prior_weight: float = 0.0
    gradient_blur: float = 1.0  # sigma (pixels) of a blur on the raw gradient: calms pixel-scale speckle
    start_blur: float = 3.0  # noise start: sigma of the blur that makes the first noise blotchy, not grainy
    sharpness: float = 0.0  # > 0: also push other classes down (log-sum-exp)
    jitter_px: int = 8
    scale_range: tuple[float, float] = (0.85, 1.15)
    rotate_deg: float = 5.0  # random rotation per step, +-
    # Motion and fades per second (the look must not depend on the machine's speed):
    zoom_per_s: float = 0.05  # 5% closer each second, the 2015 stream's pace (1.25% a frame at 4 frames/s)
    spin_deg_per_s: float = 0.0  # rotation of the whole picture, degrees a second
    drift_per_s: tuple[float, float] = (0.0, 0.0)  # shift, fractions of the size a second
    # The blur between frames, as the sigma (pixels) that a second of it adds up to: blurs
    # compose by adding variances, so a frame standing for dt seconds is blurred by
    # blur_per_s * sqrt(dt) (0.4 a frame at 4 frames/s). Less keeps the detail that reads magnified.
    blur_per_s: float = 0.8
    blend_s: float = 3.0  # a new target fades in over this many seconds
    # The GPU's settings (docs/performance.md, "On a GPU"); on a CPU they cost or change nothing.
    # "auto": the network in bf16 autocast on CUDA (tensor cores; image and gradient stay fp32), fp32 elsewhere
    precision: str = "auto"  # auto | fp32 | bf16
    # views a step shows the network at once: the next ones of `octaves`, those of one shape
    # as one batch, their gradients summed into one step. 1: one view a step (the CPU's best)
    views_per_step: int = 1
    capture: str = "off"  # off | graphs | compile: the step's fixed-shape parts captured (dreamer/capture.py)
    mode: str = "class"  # "class": class logits; "layer": classic DeepDream on `layer`
    layer: str = ""  # for mode="layer"; empty = the model's middle suggested layer
    split: bool = False  # "A + B" side by side instead of blended


@dataclass
class LiveSettings:
    mix: float = 1.0  # how much of the dream is laid over the live picture (0.5: half; more of the picture shows)
    half_life_s: float = 2.0  # the residual halves in this many seconds where the dream stops adding to it
    flow: bool = True  # carry the residual along optical flow; off: it stays where it was (and smears)
    flow_scale: float = 0.5  # the flow is computed at this fraction of the dream's size
    # forward-backward disagreement (dream pixels) up to which the residual is carried whole,
    # let go gradually beyond it and entirely at 3x it (1 px erased the dream in flat areas,
    # where DIS's flow is noisy: vtest.avi read 0-10% top-5 with it, 60% with 2 px)
    max_disagreement_px: float = 2.0
    still_px: float = 0.5  # motion below this counts as none: a still scene's residual is not resampled each frame
