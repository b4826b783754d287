"""Dream quality, as JSON: do people (and a model the dreamer does not use) see the class?

Dreams toward each class from noise with the project's loop (default settings unless a
config says otherwise), and with the naive reference step for comparison, then reports the
top-1/top-5 rate under the dreaming model and under an independent judge
(EfficientNet-Lite1), the judge's mean probability for the class, plus Hasler-Suesstrunk
colourfulness and RMS contrast.

    python scripts/eval_quality.py                       # 20 classes, 224x224, 40 frames
    python scripts/eval_quality.py --classes volcano pizza --sheet sheet.png --no-naive
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive import naive_dream  # noqa: E402

from dreamer.classes import parse  # noqa: E402
from dreamer.loop import Dreamer, to_uint8  # noqa: E402
from dreamer.models import load_model  # noqa: E402
from stream.config import load_config  # noqa: E402

CLASSES = ["volcano", "jellyfish", "pizza", "goldfish", "flamingo", "monarch butterfly", "strawberry",
           "lemon", "lighthouse", "coral reef", "daisy", "peafowl", "school bus", "broccoli", "starfish",
           "zebra", "tiger", "cheeseburger", "balloon", "castle"]


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) on 0..255 RGB."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def contrast(rgb: np.ndarray) -> float:
    """RMS contrast of luminance, 0..1."""
    y = (rgb.astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])
    return float(y.std())


def rank(model, image: torch.Tensor, index: int) -> tuple[int, float]:
    """Where the class ranks (0 = top) and its probability."""
    with torch.no_grad():
        logits = model(image)[0]
    return int((logits > logits[index]).sum()), float(logits.softmax(-1)[index])


def score(images: list[torch.Tensor], indices: list[int], dreamer_model, judge) -> dict:
    ranks = [rank(dreamer_model, im, i)[0] for im, i in zip(images, indices)]
    judged, probs = zip(*(rank(judge, im, i) for im, i in zip(images, indices)))
    rgbs = [to_uint8(im) for im in images]
    n = len(images)
    return {"dreamer_top1": sum(r == 0 for r in ranks) / n, "dreamer_top5": sum(r < 5 for r in ranks) / n,
            "judge_top1": sum(r == 0 for r in judged) / n, "judge_top5": sum(r < 5 for r in judged) / n,
            # the judge's mean probability for the class: finer-grained than top-1 over 20 classes
            "judge_prob": round(float(np.mean(probs)), 3),
            "colourfulness": round(float(np.mean([colourfulness(x) for x in rgbs])), 1),
            "contrast": round(float(np.mean([contrast(x) for x in rgbs])), 3),
            "judge_ranks": dict(zip([str(i) for i in indices], judged))}


def contact_sheet(images: list[torch.Tensor], labels: list[str], path: Path, cols: int = 4) -> None:
    import cv2

    tiles = []
    for im, label in zip(images, labels):
        rgb = np.ascontiguousarray(to_uint8(im))
        cv2.rectangle(rgb, (0, rgb.shape[0] - 22), (rgb.shape[1], rgb.shape[0]), (0, 0, 0), -1)
        cv2.putText(rgb, label, (6, rgb.shape[0] - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(rgb)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", nargs="+", default=CLASSES)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge", default="efficientnet_lite1")
    ap.add_argument("--sheet", type=Path, help="save a contact sheet PNG of the dreams")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    args = ap.parse_args()

    cfg = load_config(args.config)
    cfg.dream.size = (args.size, args.size)
    model, judge = load_model(cfg.model), load_model(args.judge)
    targets = [parse(c) for c in args.classes]
    indices = [t.classes[0].index for t in targets]
    t0 = time.perf_counter()
    dreams = []
    for t in tqdm(targets, desc="dreaming", unit="class"):
        d = Dreamer(model, cfg.dream, seed=args.seed)
        d.set_target(t)
        for _ in range(args.frames):
            d.frame()
        dreams.append(d.image)
    result = {"model": cfg.model, "judge": args.judge, "size": args.size, "frames": args.frames,
              "steps_per_frame": cfg.dream.steps, "classes": len(targets),
              "loop": {**score(dreams, indices, model, judge), "seconds": round(time.perf_counter() - t0, 1)}}
    if args.sheet:
        contact_sheet(dreams, [t.label for t in targets], args.sheet)
    if not args.no_naive:
        t0 = time.perf_counter()
        steps = args.frames * cfg.dream.steps  # the same number of gradient steps
        naive = [naive_dream(model, i, (args.size, args.size), steps, args.seed)
                 for i in tqdm(indices, desc="naive", unit="class")]
        result["naive"] = {**score(naive, indices, model, judge), "seconds": round(time.perf_counter() - t0, 1)}
        if args.sheet:
            contact_sheet(naive, [t.label for t in targets], args.sheet.with_name(args.sheet.stem + "_naive.png"))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
