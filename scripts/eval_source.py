"""A live source dreamed three ways, judged for flicker, for the class and for the scene: the
`--source CLIP` part of scripts/eval_quality.py.

- flow: ours (dreamer/live.py): each frame starts from the source frame plus the last
  residual carried along optical flow, let go where the flow disagrees with itself;
- still: the same, the residual left where it was (flow off);
- blend: DeepDreamVideo's way, each frame starting from a blend of the source frame and the
  last dreamed frame, no flow.

Every source frame is dreamed (as `render --source` does), the same steps and seed each way.
Flicker is the flow-compensated difference between consecutive output frames (the earlier
frame moved along the source's flow onto the later one, compared where that flow is trusted),
less the same for the source itself: what the dream adds to the picture's change from frame
to frame, 0 for a dream that sticks to the scene. The class: the judge's top-5 on the last
frames at the player's size. The scene: how well the output's large shapes (a 16x9 grid of
means) correlate with the source's.

    python scripts/eval_quality.py --no-stills --source /usr/share/doc/opencv-doc/examples/data/vtest.avi
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dreamer.flow import Flow, compose, residual_of
from dreamer.live import LiveDream, LiveSettings, motionless
from dreamer.loop import Dreamer
from dreamer.photo import cover
from stream.inputs.source import open_input, parse_source

MODES = ("flow", "still", "blend")
BLEND = 0.5  # DeepDreamVideo's blend of the last dreamed frame into the next


def source_frames(path: str, size: tuple[int, int], count: int) -> tuple[list[np.ndarray], float]:
    source = open_input(parse_source(path))
    frames = []
    try:
        for rgb, _ in source.frames():
            frames.append(cover(rgb, size))
            if len(frames) == count:
                break
    finally:
        source.close()
    return frames, float(source.fps)


def dream_clip(model, settings, target, frames: list[np.ndarray], fps: float, mode: str, steps: int,
               seed: int) -> list[np.ndarray]:
    """The clip dreamed one way: each output frame as shown (mix 1)."""
    dreamer = Dreamer(model, motionless(settings), seed=seed)
    live = LiveDream(dreamer, LiveSettings(flow=mode == "flow"))
    live.set_target(target)
    out = []
    for src in tqdm(frames, desc=f"source, {mode}", unit="frame"):
        if mode == "blend":
            start = src if not out else compose(src, residual_of(out[-1], src), BLEND)
            dreamer.restart_from(start)
            out.append(dreamer.frame(1.0 / fps, steps))
        else:
            out.append(live.frame(src, 1.0 / fps, steps))
    live.close()
    return out


def flicker(out: list[np.ndarray], src: list[np.ndarray]) -> dict:
    """Mean flow-compensated change between consecutive frames (0-255 grey), of the output and of
    the source, over the whole picture and where the scene moves (flow over half a pixel):
    `added` is the output's less the source's."""
    flow = Flow(scale=0.5)

    def grey(rgb):
        return rgb.astype(np.float32).mean(-1)

    changes = {(kind, where): [] for kind in ("output", "source") for where in ("all", "moving")}
    h, w = src[0].shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    inner = (slice(8, -8), slice(8, -8))
    for i in range(1, len(src)):
        back, trust = flow.backward(src[i], src[i - 1])
        moving = (np.sqrt((back ** 2).sum(-1)) > 0.5)[inner]
        for kind, frames in (("output", out), ("source", src)):
            moved = cv2.remap(grey(frames[i - 1]), xs + back[..., 0], ys + back[..., 1], cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
            diff, weight = np.abs(grey(frames[i]) - moved)[inner], trust[inner]
            changes[kind, "all"].append(float((diff * weight).sum() / max(1.0, weight.sum())))
            if moving.sum() > 100:
                changes[kind, "moving"].append(float((diff * weight)[moving].sum() / max(1.0, weight[moving].sum())))
    out_figures = {}
    for where in ("all", "moving"):
        o, s = (float(np.mean(changes[k, where])) if changes[k, where] else float("nan") for k in ("output", "source"))
        out_figures[where] = {"output": round(o, 2), "source": round(s, 2), "added": round(o - s, 2)}
    return out_figures


def scene_kept(out: list[np.ndarray], src: list[np.ndarray]) -> float:
    """Correlation of the output's and the source's large shapes (16x9 means of grey), mean over frames."""
    def shapes(rgb):
        return cv2.resize(rgb.astype(np.float32).mean(-1), (16, 9), interpolation=cv2.INTER_AREA).ravel()

    return round(float(np.mean([np.corrcoef(shapes(o), shapes(s))[0, 1] for o, s in zip(out, src)])), 3)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255


def evaluate(model, judge, settings, target, path: str, count: int, steps: int, seed: int, judge_fn,
             player) -> tuple[dict, dict[str, list[np.ndarray]], list[np.ndarray]]:
    """Every mode on the first `count` frames of `path`: (figures, outputs by mode, source frames).
    `judge_fn(judge, image, index)` -> Verdict; `player(image)`: the frame as a viewer sees it."""
    frames, fps = source_frames(path, tuple(settings.size), count)
    index = target.classes[0].index
    result, outputs = {"clip": path, "frames": len(frames), "fps": round(fps, 3), "steps_per_frame": steps,
                       "size": list(settings.size), "class": target.label}, {}
    last = max(1, len(frames) // 4)  # the last quarter: the dream has grown
    for mode in MODES:
        out = dream_clip(model, settings, target, frames, fps, mode, steps, seed)
        outputs[mode] = out
        verdicts = [judge_fn(judge, player(to_tensor(o)), index) for o in out[-last:]]
        result[mode] = {"flicker": flicker(out, frames), "scene_kept": scene_kept(out, frames),
                        "top5_last_quarter": round(sum(v.rank < 5 for v in verdicts) / len(verdicts), 3),
                        "top1_last_quarter": round(sum(v.rank == 0 for v in verdicts) / len(verdicts), 3)}
    return result, outputs, frames
