"""Dream quality as viewers meet it, as JSON: would a person name the class on screen?

Two measurements, both judged by EfficientNet-Lite1, a network the dreamer never uses:

- stills: each class dreamed from noise (224x224, 40 frames, default settings), for several
  seeds, then judged as the page shows it: magnified 1.0x, 1.25x and 1.5x (antialiased
  bicubic) and at half resolution blown back up. Texture that only fools a network at the
  size it was dreamed falls apart under these; the worst view is the figure that counts.
- live: the real loop at the stream size (zoom, blur, blends between classes and all) dreams
  one hold per class, one class after another as a stream does (frames per hold = the served
  dream rate x `hold_s`), and the last frame's centre square is judged at 1.0x, 1.5x and half
  resolution (the worst of these counts), and also as a 960x540 player shows it and at 3x.

The calibration is why the live figure is not the 3x one: magnified past ~1.5x the judge
misses real photos as soon as they are as soft as any upscaled stream frame (a photo at a
quarter of its resolution: top-5 for 6 of 6 at 1.0x, 2 of 6 at 2.4x), where a person still
names them at a glance. The 3x figure then measures the judge's range, not the picture; the
blind naming of live frames at viewing size (README) is the check for that size.

Both report top-1/top-5, the judge's mean probability for the class, the share of the
judge's top-1 answers that are textiles (wool, stole, sock...: the failure this eval was
built to catch), colourfulness (Hasler-Suesstrunk) and contrast, and write contact sheets
at viewing size. Real photos go through the same views as a calibration.

    python scripts/eval_quality.py --sheets out/                  # stills, 20 classes x 6 seeds
    python scripts/eval_quality.py --live --seeds 0 --sheets out/ # + the live run
    python scripts/eval_quality.py --classes volcano pizza --seeds 0 --no-stills --live
    python scripts/eval_quality.py --seeds 0 --sweep 1 1.5 2 2.5 3   # where reading falls off
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from dreamer.classes import catalogue, parse
from dreamer.loop import Dreamer, to_uint8
from dreamer.models import load_model
from stream.config import load_config

CLASSES = ["volcano", "jellyfish", "pizza", "goldfish", "flamingo", "monarch butterfly", "strawberry",
           "lemon", "lighthouse", "coral reef", "daisy", "peafowl", "school bus", "broccoli", "starfish",
           "zebra", "tiger", "cheeseburger", "balloon", "castle"]
# What "knitted" dreams get mistaken for: woven, knitted and fleecy things.
TEXTILES = ["wool", "stole", "sock", "mitten", "poncho", "dishrag", "bath towel", "quilt", "cardigan",
            "sweatshirt", "jersey", "velvet", "doormat", "handkerchief", "fur coat", "shower curtain",
            "prayer rug", "sarong", "pajama", "kimono", "abaya", "bib", "apron", "bonnet", "swab"]
STILL_VIEWS = ("1.0", "1.25", "1.5", "half")  # how the page may show a still
PLAYER_PX = 540  # the height of a 960x540 player: the page shows a 320x180 stream 3x, 480x270 2x
LITERAL_MAGNIFY = 3.0  # the figure: the centre square magnified 3x whatever the stream size
# Real photos (scripts/fit_prior.py's sources) and the class each shows: the judge's calibration.
PHOTOS = {"skimage:chelsea": "Egyptian Mau", "skimage:coffee": "espresso", "mate:LadyBird.jpg": "ladybug",
          "mate:YellowFlower.jpg": "daisy", "sklearn:flower.jpg": "daisy", "sklearn:china.jpg": "palace"}


def textile_indices() -> set[int]:
    return {parse(name).classes[0].index for name in TEXTILES}


# -- views: the picture as the viewer sees it --------------------------------------------------
def magnify(image: torch.Tensor, factor: float) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] scaled by `factor` with antialiased bicubic, as a browser does."""
    if factor == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (round(h * factor), round(w * factor))
    return F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def half_and_back(image: torch.Tensor) -> torch.Tensor:
    """Half resolution blown back up: what is left is what reads from a distance."""
    h, w = image.shape[-2:]
    small = F.interpolate(image, size=(h // 2, w // 2), mode="area")
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def still_view(image: torch.Tensor, view: str) -> torch.Tensor:
    return half_and_back(image) if view == "half" else magnify(image, float(view))


def centre_square(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return image[..., y:y + s, x:x + s]


# -- judging -----------------------------------------------------------------------------------
@dataclass
class Verdict:
    rank: int  # where the wanted class ranks in the judge's answer (0 = top-1)
    prob: float  # the judge's probability for it
    top1: int  # the judge's top-1 class


def judge_image(judge, image: torch.Tensor, index: int) -> Verdict:
    with torch.no_grad():
        logits = judge(image.float())[0]
    return Verdict(int((logits > logits[index]).sum()), float(logits.softmax(-1)[index]), int(logits.argmax()))


def summarize(verdicts: list[Verdict], textiles: set[int]) -> dict:
    n = len(verdicts)
    return {"top1": round(sum(v.rank == 0 for v in verdicts) / n, 3),
            "top5": round(sum(v.rank < 5 for v in verdicts) / n, 3),
            "prob": round(float(np.mean([v.prob for v in verdicts])), 3),
            "textile_top1": round(sum(v.top1 in textiles for v in verdicts) / n, 3)}


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) on 0..255 RGB."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def contrast(rgb: np.ndarray) -> float:
    """RMS contrast of luminance, 0..1."""
    y = (rgb.astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])
    return float(y.std())


def looks(images: list[torch.Tensor]) -> dict:
    rgbs = [to_uint8(im) for im in images]
    return {"colourfulness": round(float(np.mean([colourfulness(x) for x in rgbs])), 1),
            "contrast": round(float(np.mean([contrast(x) for x in rgbs])), 3)}


def judge_views(judge, images: list[torch.Tensor], indices: list[int], views: dict, textiles: set[int]) -> dict:
    """Every image under every view; per view, and the worst view for each figure."""
    per_view = {name: summarize([judge_image(judge, fn(im), i) for im, i in zip(images, indices)], textiles)
                for name, fn in views.items()}
    worst = {k: (max if k == "textile_top1" else min)(v[k] for v in per_view.values())
             for k in ("top1", "top5", "prob", "textile_top1")}
    return {"views": per_view, "worst": worst}


# -- dreaming ----------------------------------------------------------------------------------
def dream_stills(model, settings, targets, seeds, frames, dt) -> list[tuple[int, torch.Tensor]]:
    """Each class from noise, `frames` frames of `dt` seconds of motion each."""
    out = []
    with tqdm(total=len(seeds) * len(targets), desc="stills", unit="dream") as bar:
        for seed in seeds:
            for t in targets:
                d = Dreamer(model, settings, seed=seed)
                d.set_target(t)
                for _ in range(frames):
                    d.frame(dt)
                out.append((seed, d.image.detach().clone()))
                d.close()
                bar.update()
    return out


def dream_live(model, settings, targets, seed, frames_per_hold, dt, steps, from_noise=False) -> list[torch.Tensor]:
    """One stream: each class follows the last one's final frame, as on air: frames of `dt`
    seconds of motion and `steps` steps, as the frame budget gives them on a machine that
    dreams 1 / dt frames a second. `from_noise`: each class a stream of its own, from noise
    (a schedule too short for a class to dream the last one away)."""
    d = None
    last = []
    with tqdm(total=len(targets) * frames_per_hold, desc=f"live seed {seed}", unit="frame") as bar:
        for t in targets:
            if d is None or from_noise:
                if d is not None:
                    d.close()
                d = Dreamer(model, settings, seed=seed)
            d.set_target(t)
            for _ in range(frames_per_hold):
                d.frame(dt, steps)
                bar.update()
            last.append(d.image.detach().clone())
    d.close()
    return last


# -- contact sheets ----------------------------------------------------------------------------
def contact_sheet(images: list[torch.Tensor], labels: list[str], path: Path, cols: int = 5) -> None:
    """Tiles as the viewer sees them (already magnified), a caption under each."""
    tiles = []
    for im, label in zip(images, labels):
        rgb = np.ascontiguousarray(to_uint8(im))
        bar = np.zeros((28, rgb.shape[1], 3), np.uint8)
        cv2.putText(bar, label, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([rgb, bar], 0))
    cols = min(cols, len(tiles))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(path, quality=88)


def save_pictures(images: list[torch.Tensor], targets, folder: Path, kind: str) -> None:
    """Uncaptioned PNGs with neutral names, in a shuffled order; which is which in key.json."""
    import random

    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "key.json"
    key = json.loads(key_file.read_text()) if key_file.exists() else {}
    order = list(range(len(images)))
    random.Random(len(key) + 7).shuffle(order)
    for i in order:
        name = f"picture_{len(key) + 1:02d}.png"
        Image.fromarray(to_uint8(images[i])).save(folder / name)
        key[name] = {"class": targets[i].label, "kind": kind}
    key_file.write_text(json.dumps(key, indent=1))


def caption(judge, image: torch.Tensor, label: str) -> str:
    with torch.no_grad():
        top = int(judge(image)[0].argmax())
    return f"{label} -> {catalogue().names[top]}"


# -- calibration ---------------------------------------------------------------------------------
def photo_calibration(judge, size: int, views: dict, textiles: set[int]) -> dict:
    """Real photos (centre squares at `size`) through the same views, sharp and softened to a
    quarter of their resolution (as soft as an upscaled stream frame, and still easy for a
    person to name). Where the judge misses these photos, its verdict on dreams is broken."""
    from fit_prior import package_photos

    photos = package_photos()
    sharp, soft, indices = [], [], []
    for name, label in PHOTOS.items():
        if name not in photos:
            continue
        x = torch.from_numpy(np.array(photos[name])).permute(2, 0, 1)[None].float() / 255
        x = F.interpolate(centre_square(x), size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
        sharp.append(x)
        soft.append(half_and_back(half_and_back(x)))
        indices.append(parse(label).classes[0].index)
    return {"photos": len(sharp), "sharp": judge_views(judge, sharp, indices, views, textiles)["views"],
            "soft": judge_views(judge, soft, indices, views, textiles)["views"]}


# What the live frame's centre square is judged at: within the judge's range (1.0, 1.5, half
# resolution: where it still names soft photos) and, for the record, at a 960x540 player's size
# and literally 3x, where it misses soft photos too.
LIVE_RANGE = ("1.0", "1.5", "half")


def magnification(text: str) -> float:
    """--sweep's values: a factor a picture can be shown at (0.1-8; 8x of 270 px is 2160 px)."""
    try:
        factor = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.1 <= factor <= 8:
        raise argparse.ArgumentTypeError(f"{text}: a magnification between 0.1 and 8")
    return factor


def sweep_views(factors: list[float], square: bool = False) -> dict:
    """Magnifications side by side: where the judge stops reading dreams, and photos."""
    crop = centre_square if square else (lambda im: im)
    return {f"{f:g}x": (lambda im, f=f: magnify(crop(im), f)) for f in factors}


def judge_sweep(judge, images, indices, factors: list[float], size: int, textiles: set[int],
                square: bool = False) -> dict:
    """The dreams and the calibration photos (at `size`) judged at each magnification."""
    views = sweep_views(factors, square)
    return {"dreams": judge_views(judge, images, indices, views, textiles)["views"],
            "photos": photo_calibration(judge, size, views, textiles)}


def live_views(height: int, player_px: int = PLAYER_PX) -> dict:
    """The live frame's views; `player_px`: the height of the player it is watched in (540: a
    960x540 player; 720: a 1280-wide one, where a 720p frame is shown as it is)."""
    return {"1.0": centre_square, "1.5": lambda im: magnify(centre_square(im), 1.5),
            "half": lambda im: half_and_back(centre_square(im)),
            "player": lambda im: magnify(centre_square(im), player_px / height),
            "frame": lambda im: magnify(im, player_px / height),  # the whole frame, as the player shows it
            "3x": lambda im: magnify(centre_square(im), LITERAL_MAGNIFY)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", nargs="+", default=CLASSES)
    ap.add_argument("--config", type=Path, help="dream settings (default: configs/default.toml)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--size", type=int, default=224, help="side of the square stills")
    ap.add_argument("--frames", type=int, default=40, help="frames per still")
    ap.add_argument("--no-stills", action="store_true")
    ap.add_argument("--live", action="store_true", help="also run the live loop at the config's stream size")
    ap.add_argument("--dream-fps", type=float, default=4.0,
                    help="the served dream rate (make bench): each frame stands for 1/FPS s of motion, and the "
                         "live run dreams FPS x hold_s frames a class (4.0: the rate the defaults were chosen at)")
    ap.add_argument("--steps", type=int, help="steps a live frame takes, as the frame budget gives them on the "
                                              "machine emulated (default: dream.steps)")
    ap.add_argument("--hold", type=float, help="seconds of stream a live class is held (default: queue.hold_s)")
    ap.add_argument("--from-noise", action="store_true",
                    help="live: each class from noise, not from the last one's picture (for holds too short for that)")
    ap.add_argument("--player-width", type=int, default=960,
                    help="the 16:9 player the live frames are judged and saved at (960: the page's; 1280: a "
                         "1280x720 player, where a 720p stream is shown as it is)")
    ap.add_argument("--live-seed", type=int, default=0)
    ap.add_argument("--judge", default="efficientnet_lite1")
    ap.add_argument("--sweep", type=magnification, nargs="+", metavar="X",
                    help="also judge the dreams and the photos at each of these magnifications")
    ap.add_argument("--source", metavar="CLIP", help="also dream this clip flow / still / blend and judge flicker, "
                                                     "the class and the scene (scripts/eval_source.py)")
    ap.add_argument("--source-frames", type=int, default=60, help="frames of the clip (default 60)")
    ap.add_argument("--source-class", default="jellyfish")
    ap.add_argument("--sheets", type=Path, help="folder for contact sheets (stills.jpg, live.jpg, source.jpg)")
    ap.add_argument("--pictures", type=Path,
                    help="folder for uncaptioned pictures at viewing size (blind naming): the first seed's stills "
                         "at 2x, the live frames whole at a 960x540 player's size; names in key.json")
    args = ap.parse_args()

    cfg = load_config(args.config)
    model, judge = load_model(cfg.model), load_model(args.judge)
    targets = [parse(c) for c in args.classes]
    indices = [t.classes[0].index for t in targets]
    textiles = textile_indices()
    views = {v: (lambda im, v=v: still_view(im, v)) for v in STILL_VIEWS}
    result = {"model": cfg.model, "judge": args.judge, "classes": len(targets),
              "steps_per_frame": cfg.dream.steps, "dream_fps": args.dream_fps}

    if not args.no_stills:
        settings = cfg.dream
        settings.size = (args.size, args.size)
        t0 = time.perf_counter()
        stills = dream_stills(model, settings, targets, args.seeds, args.frames, 1.0 / args.dream_fps)
        images = [im for _, im in stills]
        all_indices = indices * len(args.seeds)
        result["stills"] = {"size": args.size, "frames": args.frames, "seeds": args.seeds,
                            **judge_views(judge, images, all_indices, views, textiles),
                            "dreamer_at_1.0": summarize([judge_image(model, im, i)
                                                         for im, i in zip(images, all_indices)], textiles),
                            **looks(images), "seconds": round(time.perf_counter() - t0, 1),
                            "photos": photo_calibration(judge, args.size, views, textiles)}
        if args.sweep:
            result["stills"]["sweep"] = judge_sweep(judge, images, all_indices, args.sweep, args.size, textiles)
        if args.pictures:
            save_pictures([magnify(im, 2.0) for im in images[:len(targets)]], targets, args.pictures, "still")
        if args.sheets:
            first = images[:len(targets)]  # the first seed, magnified 1.5x: the hardest view
            shown = [magnify(im, 1.5) for im in first]
            contact_sheet(shown, [caption(judge, im, t.label) for im, t in zip(shown, targets)],
                          args.sheets / "stills.jpg")

    if args.live:
        cfg = load_config(args.config)
        hold_s = args.hold or cfg.queue.hold_s
        player_px = args.player_width * 9 // 16
        frames = max(1, round(args.dream_fps * hold_s))
        w, h = cfg.dream.size
        t0 = time.perf_counter()
        steps = args.steps or cfg.dream.steps
        last = dream_live(model, cfg.dream, targets, args.live_seed, frames, 1.0 / args.dream_fps, steps,
                          args.from_noise)
        seconds = round(time.perf_counter() - t0, 1)
        views = live_views(h, player_px)
        judged = judge_views(judge, last, indices, views, textiles)
        in_range = [judged["views"][v] for v in LIVE_RANGE]
        result["live"] = {"size": [w, h], "frames_per_hold": frames, "steps_per_frame": steps, "hold_s": hold_s,
                          "dream_fps": args.dream_fps, "seed": args.live_seed, "player_px": player_px,
                          "from_noise": args.from_noise,
                          "views": judged["views"],
                          "worst_in_range": {k: min(v[k] for v in in_range) for k in ("top1", "top5", "prob")},
                          "photos": photo_calibration(judge, h, views, textiles), **looks(last), "seconds": seconds}
        if args.sweep:
            result["live"]["sweep"] = judge_sweep(judge, last, indices, args.sweep, h, textiles, square=True)
        if args.pictures:
            save_pictures([views["frame"](im) for im in last], targets, args.pictures, "live")
        if args.sheets:
            shown = [views["player"](im) for im in last]
            contact_sheet(shown, [caption(judge, im, t.label) for im, t in zip(shown, targets)],
                          args.sheets / "live.jpg", cols=4)
            whole = [views["frame"](im) for im in last]  # the whole frames, as the player shows them
            contact_sheet(whole, [caption(judge, im, t.label) for im, t in zip(whole, targets)],
                          args.sheets / "live_frames.jpg", cols=2)
    if args.source:
        from eval_source import MODES, evaluate

        cfg = load_config(args.config)
        w, h = cfg.dream.size
        views = live_views(h)
        figures, outputs, frames = evaluate(model, judge, cfg.dream, parse(args.source_class), args.source,
                                            args.source_frames, args.steps or cfg.dream.steps, args.live_seed,
                                            judge_image, views["player"])
        result["source"] = figures
        if args.sheets:  # a row per way, frames from the clip's first to its last, at a player's size
            picks = np.linspace(0, len(frames) - 1, 4).round().astype(int)
            rows = [("source", frames)] + [(m, outputs[m]) for m in MODES]
            tiles = [magnify(torch.from_numpy(rgb[i]).permute(2, 0, 1)[None].float() / 255, PLAYER_PX / 2 / h)
                     for _, rgb in rows for i in picks]
            labels = [f"{name} {i}" for name, _ in rows for i in picks]
            contact_sheet(tiles, labels, args.sheets / "source.jpg", cols=len(picks))
            save_clip(outputs["flow"], frames, figures["fps"], args.sheets / "source.mp4")
    print(json.dumps(result, indent=1))


def save_clip(dreamed: list[np.ndarray], source: list[np.ndarray], fps: float, path: Path) -> None:
    """The source and our dream side by side, as a short mp4 for the docs."""
    from dreamer.render import Video

    video = Video(path, fps)
    for d, s in zip(dreamed, source):
        video.write(np.concatenate([s, d], axis=1))
    video.close()


if __name__ == "__main__":
    main()
