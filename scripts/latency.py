"""Glass to glass: from a frame shown by the server to that frame painted in the page, over
WebRTC and over MJPEG, in Debian's Chromium on this machine.

    python scripts/latency.py                 # 20 s of each

The stream dreams a live source that flips between black and white every second, laid over
with none of the dream (`[source] mix = 0`), so each flip is unmistakable wherever it is
seen. This script notes when the server shows each flip (it reads /frame.jpg every 10 ms: a
few ms late, so the figures err low by that much), the page notes when it paints it (the
<video>'s frame callback; for MJPEG the <img> read into a canvas every 5 ms), both on this
machine's clock. Prints one JSON object: each path's median and max over the flips seen.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
from loadtest import start_serve, wait_healthy

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
WATCH_JS = """(mjpeg) => new Promise((done) => {
  const flips = [], c = document.createElement('canvas'); c.width = c.height = 8;
  const g = c.getContext('2d', {willReadFrequently: true});
  let last = null;
  const look = (el) => {
    g.drawImage(el, 0, 0, 8, 8);
    const d = g.getImageData(0, 0, 8, 8).data;
    let sum = 0; for (let i = 0; i < d.length; i += 4) sum += d[i];
    const bright = sum / 64 > 128;
    if (last !== null && bright !== last) flips.push([performance.timeOrigin + performance.now(), bright]);
    last = bright;
  };
  window.flips = flips;
  if (mjpeg) { const img = document.getElementById('stream'); setInterval(() => img.naturalWidth && look(img), 5); }
  else { const v = document.getElementById('live');
         const each = () => { look(v); v.requestVideoFrameCallback(each); }; v.requestVideoFrameCallback(each); }
  done();
})"""


def flip_video(path: Path, seconds: int = 20) -> None:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        for n in range(seconds * 25):
            rgb = np.full((180, 320, 3), 255 if (n // 25) % 2 else 0, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode(None))


def server_flips(base: str, stop: threading.Event, out: list) -> None:
    last = None
    while not stop.is_set():
        with urllib.request.urlopen(base + "/frame.jpg", timeout=5) as r:
            jpeg = r.read()
        seen = time.time() * 1000
        bright = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).mean() > 128
        if last is not None and bright != last:
            out.append((seen, bright))
        last = bright
        stop.wait(0.01)


def latencies(server: list, page: list) -> list[float]:
    """Each flip the page painted, against the server's showing of it (the latest flip the
    same way before it, within a second)."""
    found = []
    for t, bright in page:
        before = [s for s, b in server if b == bright and 0 <= t - s < 1000]
        if before:
            found.append(t - max(before))
    return found


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="latency-"))
    flip_video(tmp / "flips.mp4")
    config = tmp / "latency.toml"
    config.write_text(f'device = "cpu"\n[dream]\nsize = [160, 90]\n[source]\ninput = "{tmp / "flips.mp4"}"\n'
                      "loop = true\nmix = 0.0\n")
    proc, base, _ = start_serve(config, (tmp / "serve.log").open("w"))
    result = {}
    try:
        wait_healthy(base, 180)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            for path, url in (("webrtc", "/"), ("mjpeg", "/?mjpeg=1")):
                page = browser.new_page()
                page.goto(base + url)
                if path == "webrtc":
                    page.wait_for_function("!document.getElementById('live').hidden", timeout=30_000)
                else:
                    page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=30_000)
                page.evaluate(WATCH_JS, path == "mjpeg")
                stop, seen = threading.Event(), []
                poller = threading.Thread(target=server_flips, args=(base, stop, seen))
                poller.start()
                time.sleep(args.seconds)
                stop.set()
                poller.join()
                took = latencies(seen, page.evaluate("window.flips"))
                result[path] = {"flips": len(took), "median_ms": round(statistics.median(took)) if took else None,
                                "max_ms": round(max(took)) if took else None}
                page.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
