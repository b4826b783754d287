"""Fit the natural-image prior (dreamer/prior.py) on real photos that ship in packages.

The photos: scikit-image (astronaut, chelsea, coffee, rocket, the stereo motorcycle pair),
scikit-learn (china.jpg, flower.jpg), matplotlib (grace_hopper.jpg) and, when installed,
Debian's mate-backgrounds nature photos (/usr/share/backgrounds/mate/nature). All come with
`make install-test`. The fit is seeded: the same photos give the same file, byte for byte.

    python scripts/fit_prior.py                     # writes dreamer/data/natural_prior.npz
    python scripts/fit_prior.py --output /tmp/p.npz --json
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dreamer.prior import FILE, fit

MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket")
MAX_SIDE = 1024  # big wallpapers are scaled down first: the same statistics, a fraction of the time


def package_photos() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8, in a fixed order. Missing sources are an error, named."""
    import matplotlib
    from skimage import data
    from sklearn.datasets import load_sample_image

    photos = {f"skimage:{n}": getattr(data, n)() for n in SKIMAGE}
    left, right, _ = data.stereo_motorcycle()
    photos.update({"skimage:motorcycle_left": left, "skimage:motorcycle_right": right})
    photos.update({f"sklearn:{n}": load_sample_image(n) for n in ("china.jpg", "flower.jpg")})
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photos["matplotlib:grace_hopper.jpg"] = np.asarray(Image.open(hopper).convert("RGB"))
    for path in sorted(MATE_NATURE.glob("*.jpg")):
        photos[f"mate:{path.name}"] = np.asarray(Image.open(path).convert("RGB"))
    return {name: shrink(rgb) for name, rgb in photos.items()}


def shrink(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return rgb
    s = MAX_SIDE / max(h, w)
    return np.asarray(Image.fromarray(rgb).resize((round(w * s), round(h * s)), Image.Resampling.BOX))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path, default=Path(__file__).resolve().parent.parent / "dreamer" / "data" / FILE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print what was fitted as JSON")
    args = ap.parse_args()

    photos = package_photos()
    if not any(n.startswith("mate:") for n in photos):
        print(f"note: {MATE_NATURE} not found (Debian mate-backgrounds); fitting without it")
    names = list(photos)
    result = fit(tqdm([photos[n] for n in names], desc="fitting", unit="photo"), seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result.save(args.output)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()[:16]
    summary = {"output": str(args.output), "photos": names, "sha256_16": digest, "nu": round(result.nu, 3),
               "scale": round(result.scale, 3), "colour_std": [round(float(v), 4) for v in result.colour_std]}
    print(json.dumps(summary, indent=1) if args.json else f"wrote {args.output} ({len(names)} photos, {digest})")


if __name__ == "__main__":
    main()
