"""Does the WebRTC picture look like the MJPEG one? Pairs for a blind comparison, at the
player's size, for each `[webrtc] bitrate_k` asked.

    python scripts/webrtc_look.py --bitrates 500,1000,2000 --classes goldfinch,pretzel --out out/look

For each bitrate a `serve` on the default config dreams each class; at three moments 4 s apart
(the first 20 s after the viewer joined) /frame.jpg (what an MJPEG viewer gets) and, of a WHEP
viewer's last half second of decoded frames, the one nearest it (the same moment) are taken,
both scaled to 960x540 as the page shows them: two pictures, A and B, which is which drawn at
random. OUT/BITRATE/pair-N-A.png and -B.png are the pictures,
OUT/key.json says which is WebRTC (kept from whoever judges them).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import tempfile
import time
import urllib.request
from collections import deque
from pathlib import Path

import cv2
import numpy as np
from loadtest import start_serve, wait_healthy
from watch_cost import watch

DEFAULT = Path(__file__).resolve().parent.parent / "configs" / "default.toml"
PLAYER = (960, 540)


def mjpeg_frame(base: str) -> np.ndarray:
    with urllib.request.urlopen(base + "/frame.jpg", timeout=10) as r:
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


async def pairs(base: str, moments: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(WebRTC, MJPEG) pictures at each moment (seconds from now)."""
    recent: deque = deque(maxlen=12)  # the last half second of decoded frames
    pc = await watch(base, lambda frame: recent.append(frame.to_ndarray(format="rgb24")))
    start, out = time.monotonic(), []
    for at in moments:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        mjpeg = await asyncio.to_thread(mjpeg_frame, base)
        await asyncio.sleep(0.3)  # WebRTC's copy of that frame arrives a little later
        out.append((closest(list(recent), mjpeg), mjpeg))
    await pc.close()
    return out


def closest(frames: list[np.ndarray], to: np.ndarray) -> np.ndarray:
    """The decoded frame nearest `to` (the same moment: the stream moves every frame)."""
    return min(frames, key=lambda f: float(np.mean((f.astype(np.float32) - to.astype(np.float32)) ** 2)))


def at_player_size(rgb: np.ndarray) -> np.ndarray:
    """As the page shows it: scaled (bilinear, as a browser does) to 960x540, BGR for imwrite."""
    return cv2.cvtColor(cv2.resize(rgb, PLAYER, interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bitrates", default="500,1000,2000")
    ap.add_argument("--classes", default="goldfinch,pretzel")
    ap.add_argument("--out", default="out/look")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    out, rng, key = Path(args.out), random.Random(args.seed), {}
    for bitrate in args.bitrates.split(","):
        folder = out / bitrate
        folder.mkdir(parents=True, exist_ok=True)
        n = 0
        for name in args.classes.split(","):
            tmp = Path(tempfile.mkdtemp(prefix="look-"))
            config = tmp / "look.toml"
            default = re.sub(r"(?ms)^start_class = .*?^playlist = .*?\]\n", "", DEFAULT.read_text())
            config.write_text(f'start_class = "{name}"\nplaylist = ["{name}"]\nseed = 1\n{default}'
                              f"\n[webrtc]\nbitrate_k = {int(bitrate)}\n")
            proc, base, _ = start_serve(config, (tmp / "serve.log").open("w"))
            try:
                wait_healthy(base, 180)
                for webrtc, mjpeg in asyncio.run(pairs(base, [20.0, 24.0, 28.0])):
                    n += 1
                    flip = rng.random() < 0.5
                    for side, picture in zip("AB", (mjpeg, webrtc) if flip else (webrtc, mjpeg), strict=True):
                        cv2.imwrite(str(folder / f"pair-{n}-{side}.png"), at_player_size(picture))
                    key[f"{bitrate}/pair-{n}"] = "B" if flip else "A"
            finally:
                proc.terminate()
                proc.wait(10)
    (out / "key.json").write_text(json.dumps({"webrtc_side": key}, indent=1))
    print(json.dumps({"pictures": len(key), "out": str(out)}))


if __name__ == "__main__":
    main()
