"""Pictures for blind naming, and the score of the names people give them.

A network judge reads texture that people do not, so whether a viewer sees what was asked for
is measured by people: uncaptioned pictures at player size (960x540), shuffled, each folder
named by someone who is told only that each picture shows one everyday thing.

`make` writes one variant (a config) as folders of numbered JPEGs and a key kept apart:
- `live/`: a real `serve` (scripts/live_frames.py) with the classes asked for in turn, the
  shown frame at the end of each hold (what a viewer sees when their request has played);
- `early/`: the same holds 5 s and 15 s in;
- `stills/`: the same classes dreamed alone as `render --class X` does (100 frames of 1/25 s
  at the config's settings), two seeds each;
- `keys/VARIANT.json`: which picture is which class; `BRIEF.txt`: what a namer is told.
`score` reads a namer's answers for one folder ({"01.jpg": ["first guess", "second", ...]})
against the key: named at the first guess, and within three, live apart from stills. `sheet`
puts a folder's pictures side by side at the size they were named, each captioned with what
was asked (and, given the answers, what its namer said first): docs/live.jpg, docs/dreams.jpg.

A guess names the class when the request parser (`dreamer.classes.parse`, the stream's own:
synonyms, plurals, typos) reads it as that class (or a group of at most three that holds it),
or when it (or its first words, before what qualifies them: "apple cut in half", "lion cub")
is part of one of the class's names as a person shortens it: "penguin" for king penguin,
"panda" for giant panda, "apple" for Granny Smith, "car" for sports car. Another class's name
("race car" for a sports car, "broccoli" for cauliflower) or a wider kind ("bird" for an
ostrich, "cat" for a lion) does not.

Tune on TUNE, report on REPORT: the class changes the score more than most settings do, so
variants are compared on the same classes in one run, and the figures reported are on
classes no setting was chosen on.

    python scripts/blind_set.py make --out out/blind --variant base               # ~15 min on 2 cores
    python scripts/blind_set.py make --out out/blind --variant calm --config calm.toml --classes tune
    python scripts/blind_set.py score --out out/blind --variant base --folder live --names names.json
    python scripts/blind_set.py sheet --out out/blind --variant base --folder live --names names.json \
        --sheet docs/live.jpg
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import cv2
import numpy as np

from dreamer.classes import RequestError, catalogue, normalize, parse, singular

ROOT = Path(__file__).resolve().parent.parent
PLAYER = (960, 540)  # what the page's player shows (a 480x270 stream at 2x)
TUNE = ["ostrich", "lion", "giant panda", "Granny Smith", "cauliflower", "sports car"]
REPORT = ["banana", "teapot", "ladybug", "umbrella", "golf ball", "pretzel"]
STILL_SEEDS = (0, 1)
STILL_FRAMES, STILL_FPS = 100, 25  # render's defaults
MAX_GROUP = 3  # a guess read as a group of more classes than this names none of them
BRIEF = """Each picture in this folder shows one everyday thing: an animal, a plant, a food, an object or a
place. Look at each picture as it is, the way you would glance at a video player, and say what
thing it shows: up to three guesses, the most likely first. Name the thing, as you would to a
friend ("a bicycle", "a zebra"), not its colours or textures. If you cannot tell, give your best
guess anyway.

Answer as JSON: {"01.jpg": ["first guess", "second guess", "third guess"], "02.jpg": [...], ...}
"""


# -- pictures ---------------------------------------------------------------------------------
def at_player_size(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the 960x540 picture a player shows (bicubic, as browsers scale),
    letterboxed in black when the shape differs."""
    h, w = rgb.shape[:2]
    scale = min(PLAYER[0] / w, PLAYER[1] / h)
    size = (round(w * scale), round(h * scale))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    out = np.zeros((PLAYER[1], PLAYER[0], 3), np.uint8)
    y, x = (PLAYER[1] - size[1]) // 2, (PLAYER[0] - size[0]) // 2
    out[y:y + size[1], x:x + size[0]] = big
    return out


def write_folder(folder: Path, pictures: list[tuple[dict, np.ndarray]], rng: random.Random) -> dict:
    """Shuffle, number and write `pictures` ((what it is, rgb) pairs); the key: name -> what."""
    folder.mkdir(parents=True, exist_ok=True)
    order = list(range(len(pictures)))
    rng.shuffle(order)
    key = {}
    for n, i in enumerate(order, 1):
        what, rgb = pictures[i]
        name = f"{n:02d}.jpg"
        cv2.imwrite(str(folder / name), cv2.cvtColor(at_player_size(rgb), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        key[name] = what
    return key


def dream_stills(config: Path, classes: list[str], seeds=STILL_SEEDS) -> list[tuple[dict, np.ndarray]]:
    """Each class dreamed alone from noise, as `render --class X` does, for each seed."""
    from dreamer.loop import Dreamer, to_uint8
    from dreamer.runtime import load_for_dreaming, tune_for_cpu_dreaming
    from stream.config import load_config

    cfg = load_config(config)
    model, device = load_for_dreaming(cfg.model, cfg.device)
    tune_for_cpu_dreaming(device)
    out = []
    for seed in seeds:
        for label in classes:
            d = Dreamer(model, cfg.dream, seed=seed)
            d.set_target(parse(label))
            for _ in range(STILL_FRAMES):
                d.frame(1.0 / STILL_FPS)
            out.append(({"class": label, "seed": seed}, to_uint8(d.image)))
            d.close()
            print(f"still: {label} (seed {seed})", flush=True)
    return out


def make(args: argparse.Namespace) -> dict:
    from live_frames import run

    classes = TUNE if args.classes == "tune" else REPORT if args.classes == "report" else \
        [c.strip() for c in args.classes.split(",")]
    for c in classes:
        parse(c)  # a class that is not one: said now, not after the run
    config = args.config or ROOT / "configs" / "default.toml"
    rng = random.Random(args.seed)
    out = args.out / args.variant
    key: dict = {"variant": args.variant, "config": str(config), "classes": classes}
    if not args.no_live:
        live = run(config, classes, args.hold, seed=args.seed)
        end = max(s.at_s for s in live.shots)
        key["live"] = write_folder(out / "live", [({"class": s.label, "at_s": s.at_s}, s.rgb)
                                                  for s in live.shots if s.at_s == end], rng)
        key["early"] = write_folder(out / "early", [({"class": s.label, "at_s": s.at_s}, s.rgb)
                                                    for s in live.shots if s.at_s != end], rng)
        key["live_run"] = {"dream_fps": live.dream_fps, "steps_per_frame": live.steps_per_frame,
                           "output_fps": live.output_fps, "seconds": live.seconds, "hold_s": args.hold}
    if not args.no_stills:
        key["stills"] = write_folder(out / "stills", dream_stills(config, classes, args.seeds), rng)
    (args.out / "keys").mkdir(parents=True, exist_ok=True)
    (args.out / "keys" / f"{args.variant}.json").write_text(json.dumps(key, indent=1))
    (args.out / "BRIEF.txt").write_text(BRIEF)
    return key


# -- scoring ----------------------------------------------------------------------------------
ARTICLES = ("a ", "an ", "the ", "some ")
# "a bunch of bananas" is bananas: what a guess is a quantity of
QUANTITIES = {"bunch", "pile", "heap", "stack", "bowl", "plate", "basket", "box", "group", "pair", "piece",
              "slice", "handful", "cluster", "row", "couple", "lot", "few", "field"}


def names_class(guess: str, wanted: str) -> bool:
    """Does `guess` (a person's words) name the class `wanted`?"""
    words = normalize(guess)
    for article in ARTICLES:
        words = words.removeprefix(article)
    head, of, rest = words.partition(" of ")
    if of and rest and singular(head) in QUANTITIES:
        words = rest
    if not words:
        return False
    index = parse(wanted).classes[0].index
    names = [key for key, i in catalogue().keys.items() if i == index]

    def shortens(w: str) -> bool:
        return any(f" {v} " in f" {name} " for v in {w, singular(w)} for name in names)
    try:
        indices = {c.index for c in parse(words).classes}
    except RequestError:
        indices = set()
    if index in indices and len(indices) <= MAX_GROUP or shortens(words):
        return True
    if len(indices) == 1:  # the parser reads it as another class ("race car", "hot dog")
        return False
    tokens = words.split()  # its first words, before what qualifies them ("apple cut in half")
    return any(shortens(" ".join(tokens[:n])) for n in range(1, len(tokens)))


def score(key: dict, names: dict) -> dict:
    """One folder's answers against its key: named at the first guess, within three, and each
    picture's row. A picture left unanswered counts as not named."""
    rows = []
    for name, what in sorted(key.items()):
        guesses = [str(g) for g in names.get(name, [])][:3]
        hits = [names_class(g, what["class"]) for g in guesses]
        rows.append({"picture": name, **what, "guesses": guesses,
                     "first": bool(hits and hits[0]), "within_three": any(hits)})
    by = {}  # live frames by their moment in the hold ("5.0 s": [first, within three, pictures])
    for r in rows:
        if "at_s" in r:
            tally = by.setdefault(f"{r['at_s']:g} s", [0, 0, 0])
            tally[0], tally[1], tally[2] = tally[0] + r["first"], tally[1] + r["within_three"], tally[2] + 1
    return {"pictures": len(rows), "named_first": sum(r["first"] for r in rows),
            "named_within_three": sum(r["within_three"] for r in rows),
            **({"by_moment": by} if by else {}), "rows": rows}


# -- contact sheets ---------------------------------------------------------------------------
def sheet(folder: Path, key: dict, names: dict, classes: list[str], path: Path, seed: int | None = None,
          cols: int = 2) -> None:
    """The folder's pictures in the order of `classes` (one seed of the stills), at player size,
    each over a caption: what was asked, and what its namer said first."""
    chosen = sorted((name for name, what in key.items() if seed is None or what.get("seed", seed) == seed),
                    key=lambda name: (classes.index(key[name]["class"]), key[name].get("at_s", 0)))
    tiles = []
    for name in chosen:
        bgr = cv2.imread(str(folder / name))
        said = names.get(name, [])
        caption = f"asked: {key[name]['class']}" + (f"   named blind: {said[0]}" if said else "")
        bar = np.zeros((44, bgr.shape[1], 3), np.uint8)
        cv2.putText(bar, caption, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(np.concatenate([bgr, bar], 0))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, 0), [cv2.IMWRITE_JPEG_QUALITY, 80])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make", help="write a variant's folders and key")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variant", required=True, help="a name for this config (a folder under --out)")
    p.add_argument("--config", type=Path, help="TOML config (default configs/default.toml); needs a [serve] table")
    p.add_argument("--classes", default="report", help='"report" (default), "tune" or "a, b, c"')
    p.add_argument("--hold", type=float, default=20.0, help="seconds each class plays live (default 20, as serve)")
    p.add_argument("--seed", type=int, default=0, help="the shuffle's and the live dream's seed")
    p.add_argument("--no-live", action="store_true")
    p.add_argument("--no-stills", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=list(STILL_SEEDS), help="the stills' seeds (default 0 1)")
    p = sub.add_parser("score", help="a namer's answers for one folder against the key")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--folder", required=True, choices=["live", "early", "stills"])
    p.add_argument("--names", type=Path, required=True, help='JSON: {"01.jpg": ["guess", ...], ...}')
    p = sub.add_parser("sheet", help="a folder's pictures side by side, captioned")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--folder", required=True, choices=["live", "early", "stills"])
    p.add_argument("--names", type=Path, help="the namer's answers, to caption what each was named first")
    p.add_argument("--seed", type=int, help="stills: only this seed's")
    p.add_argument("--sheet", type=Path, required=True, help="the JPEG to write")
    args = ap.parse_args()
    if args.command == "make":
        key = make(args)
        print(json.dumps({k: v for k, v in key.items() if k not in ("live", "early", "stills")}, indent=1))
    elif args.command == "score":
        key = json.loads((args.out / "keys" / f"{args.variant}.json").read_text())[args.folder]
        print(json.dumps(score(key, json.loads(args.names.read_text())), indent=1))
    else:
        kept = json.loads((args.out / "keys" / f"{args.variant}.json").read_text())
        names = json.loads(args.names.read_text()) if args.names else {}
        sheet(args.out / args.variant / args.folder, kept[args.folder], names, kept["classes"], args.sheet, args.seed)


if __name__ == "__main__":
    main()
