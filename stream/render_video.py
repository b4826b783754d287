"""`render --source CLIP`: every frame of a video dreamed, at the clip's rate, with its sound.

Frame by frame, as fast as the machine dreams: the source frame (cropped to the dream's
aspect) is dreamed on with the last frame's residual carried onto it along the flow
(`dreamer.live`), and written at the clip's own size, the live picture sharp and the residual
upscaled over it. A live source (camera, screen, stream) works too, for `--frames N` frames.

    render_clip(model, cfg, spec, target, Path("out.mp4"), frames=None)
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
from tqdm import tqdm

from dreamer.flow import compose
from dreamer.live import LiveDream, motionless
from dreamer.loop import Dreamer
from dreamer.photo import cover
from dreamer.render import open_writer

from .inputs.source import SourceSpec, open_input

log = logging.getLogger(__name__)


def clip_size(dream_size: tuple[int, int], source_size: tuple[int, int]) -> tuple[int, int]:
    """The written size: the source's own pixels, cropped to the dream's aspect, even sides."""
    (dw, dh), (sw, sh) = dream_size, source_size
    w, h = (sw, round(sw * dh / dw)) if sw * dh <= sh * dw else (round(sh * dw / dh), sh)
    return max(2, w // 2 * 2), max(2, h // 2 * 2)


def render_clip(model, cfg, spec: SourceSpec, target, output: Path, frames: int | None = None,
                progress: bool = True, first=None) -> int:
    """Dream the source's frames (all of a file's, or `frames`) into `output`; returns the count.
    `first`: the source already opened (so that its errors came before the model loaded)."""
    source = first or open_input(spec)
    size = clip_size(tuple(cfg.dream.size), source.size)
    total = frames if frames is not None else (source.frame_count or None)
    writer = open_writer(output, source.fps, audio_from=spec.target if spec.kind == "file" else None)
    live = LiveDream(Dreamer(model, motionless(cfg.dream), seed=cfg.seed), cfg.source)
    live.set_target(target)
    dt, n = 1.0 / source.fps, 0
    try:
        with tqdm(total=total, desc=f"dreaming {output.name}", unit="frame", disable=not progress) as bar:
            for rgb, _ in source.frames():
                if frames is not None and n >= frames:
                    break
                shown = cover(rgb, size)
                live.frame(cover(shown, tuple(cfg.dream.size)), dt)
                residual = cv2.resize(live.residual, size, interpolation=cv2.INTER_LINEAR)
                writer.write(compose(shown, residual, cfg.source.mix))
                n += 1
                bar.update()
    finally:
        writer.close()
        live.close()
        source.close()
    return n
