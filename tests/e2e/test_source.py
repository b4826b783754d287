"""Live input end to end, on real parts: video files from Debian's opencv-doc, ffmpeg pushing a
clip into a real nginx-rtmp that `serve --source rtmp://...` reads back, an Xvfb screen."""
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from peers import NGINX, RTMP_MODULE, start_nginx, stop

from .conftest import TEST_CONFIG, free_port, start_server, stop_server

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST, MEGAMIND = DATA / "vtest.avi", DATA / "Megamind.avi"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SMALL = ["--size", "96x64", "--seed", "1", "--device", "cpu", "-q"]

needs_clips = pytest.mark.skipif(not VTEST.exists(), reason="needs Debian opencv-doc (make test installs it as root)")


def dreamstream(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "stream", *args], capture_output=True, text=True, timeout=timeout)


def clip(path: Path, seconds: float, fps: int, audio: bool) -> Path:
    """A real clip made by ffmpeg: a moving test pattern, with a tone when `audio`."""
    args = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size=320x180:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    subprocess.run([*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        out = {"frames": frames, "rate": v.average_rate, "size": (v.codec_context.width, v.codec_context.height)}
    with av.open(str(path)) as c:
        out["audio_s"] = (float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
                          if c.streams.audio else None)
    return out


def test_a_whole_clip_is_dreamed_at_its_rate_with_its_sound(tmp_path):
    src = clip(tmp_path / "in.mp4", 2.0, 15, audio=True)
    out = tmp_path / "out.mp4"
    done = dreamstream("render", "--source", str(src), "--class", "jellyfish", "--output", str(out), *SMALL)
    assert done.returncode == 0, done.stderr
    got = probe(out)
    assert got["frames"] == 30 and got["rate"] == 15  # every frame, at the clip's rate
    assert got["size"] == (270, 180)  # the clip's own pixels, cropped to the dream's 3:2
    assert abs(got["audio_s"] - 2.0) < 0.1  # the sound came through, as long as the picture


@needs_clips
def test_vtest_and_megamind_render_with_frames_rate_and_audio_kept(tmp_path):
    out = tmp_path / "vtest.mp4"
    done = dreamstream("render", "--source", str(VTEST), "--class", "jellyfish", "--frames", "12",
                       "--output", str(out), *SMALL)
    assert done.returncode == 0, done.stderr
    got = probe(out)
    assert got["frames"] == 12 and got["rate"] == 10 and got["audio_s"] is None  # vtest.avi has no sound
    assert got["size"] == (768, 512)
    out = tmp_path / "megamind.mp4"
    done = dreamstream("render", "--source", str(MEGAMIND), "--class", "volcano", "--frames", "24",
                       "--output", str(out), *SMALL)
    assert done.returncode == 0, done.stderr
    got = probe(out)
    assert got["frames"] == 24 and got["rate"] == Fraction(2997, 125)
    assert abs(got["audio_s"] - 24 / float(Fraction(2997, 125))) < 0.1  # cut where the picture ends


@pytest.mark.parametrize("source, says", [
    ("/no/such/clip.mp4", "no such file"),
    ("camera:7", "no camera there"),
    ("camera:x", "camera or camera:N"),
    ("rtmp://127.0.0.1:9/live/sk_secret", "cannot open it"),
    ("ftp://example.com/a.mp4", "cannot read ftp://"),
    ("README.md", "cannot open it"),
    ("screen::199", "cannot open screen :199"),
])
def test_a_source_that_cannot_be_read_is_one_line_and_exit_2(tmp_path, source, says):
    serve = ["serve", "--port", str(free_port()), "--ws-port", str(free_port())]
    for command in (["render", "--output", str(tmp_path / "o.mp4"), "--frames", "2"], serve):
        t0 = time.monotonic()
        done = dreamstream(*command, "--source", source, "--device", "cpu", timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr, done.stderr
        assert "sk_secret" not in done.stderr  # a stream key never shows
        assert time.monotonic() - t0 < 30
    assert not (tmp_path / "o.mp4").exists()


def nginx_rtmp(tmp: Path):
    if not NGINX or not RTMP_MODULE.exists():
        pytest.skip("needs Debian nginx and libnginx-mod-rtmp (make test installs them as root)")
    rtmp_port = free_port()
    return start_nginx(tmp, rtmp_port, free_port()), rtmp_port


def push(clip_path: Path, url: str) -> subprocess.Popen:
    """ffmpeg playing a clip in real time, looped, into an RTMP ingest: a camera or OBS stand-in."""
    return subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i",
                             str(clip_path), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                             "-g", "10", "-an", "-f", "flv", url],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def health(server) -> tuple[int, dict]:
    """/healthz's status and JSON, 503 included."""
    import json
    import urllib.error

    try:
        status, _, body = server.get("/healthz")
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    return status, json.loads(body)


def wait_for(check, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"never: {what}")


@needs_clips
def test_serve_dreams_a_stream_read_back_from_nginx_and_outlives_its_drop(tmp_path):
    nginx, port = nginx_rtmp(tmp_path)
    url = f"rtmp://127.0.0.1:{port}/in/sk_cam_key"
    pusher = push(VTEST, url)
    server = None
    try:
        time.sleep(2)  # the push is up before serve opens it (else serve says it cannot, and exits 2)
        server = start_server(tmp_path, TEST_CONFIG, ["--source", url])
        state = server.get_json("/api/state")
        assert state["source"]["input"] == f"rtmp://127.0.0.1:{port}/in/****"  # named, its key masked
        assert state["source"]["size"] == [768, 576]
        wait_for(lambda: server.get_json("/api/state")["source"]["fps"] > 5, 30, "source frames arrive")
        status, report = health(server)
        assert status == 200 and report["source"]["ok"]
        status, headers, body = server.get("/frame.jpg")
        assert status == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (96, 160, 3)
        import urllib.request
        with urllib.request.urlopen(server.base + "/stream.mjpg", timeout=10) as r:  # MJPEG works alongside
            assert b"image/jpeg" in r.read(20000)
        page_names(server, f"on rtmp://127.0.0.1:{port}/in/**** (")  # the page's status line names it
        pusher.kill()  # the source drops: the stream goes on, health says so
        pusher.wait(10)
        wait_for(lambda: health(server)[0] == 503 and not health(server)[1]["source"]["ok"], 40, "health sees the drop")
        before = server.get_json("/api/state")
        assert server.proc.poll() is None and before["fps"]["output"] > 0
        shown = server.get("/frame.jpg")[0]
        assert shown == 200
        pusher = push(VTEST, url)  # ... and comes back
        wait_for(lambda: health(server)[0] == 200, 60, "the source comes back")
        assert "sk_cam_key" not in server.log.read_text()
    finally:
        if server:
            rc, _ = stop_server(server)
            assert rc == 0, server.log.read_text()[-2000:]
        pusher.kill()
        stop(nginx)


def page_names(server, text: str) -> None:
    """The viewer page, in Chromium, shows `text` in its status line."""
    from .test_browser import CHROMIUM, FLAGS

    if CHROMIUM is None:
        return  # tests/e2e/test_browser.py says why it is missing
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(server.base + "/")
        expect(page.locator("#stats")).to_contain_text(text, timeout=20_000)
        browser.close()


def test_a_screen_is_a_source(tmp_path):
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Debian xvfb")
    n = next(i for i in range(130, 160) if not Path(f"/tmp/.X11-unix/X{i}").exists())
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "320x240x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # something moving on that screen: a window whose square slides across it
    mover = subprocess.Popen([sys.executable, "-c", MOVER], env={**os.environ, "DISPLAY": f":{n}"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / "screen.mp4"
    try:
        wait_for(lambda: Path(f"/tmp/.X11-unix/X{n}").exists(), 10, "Xvfb starts")
        time.sleep(2)
        done = dreamstream("render", "--source", f"screen::{n}", "--frames", "8", "--class", "daisy",
                           "--output", str(out), *SMALL)
        assert done.returncode == 0, done.stderr
        with av.open(str(out)) as c:
            frames = [f.to_ndarray(format="gray").astype(int) for f in c.decode(video=0)]
        assert len(frames) == 8 and frames[0].shape == (212, 320)  # 320x240 cropped to 3:2 (213 rows), even sides
        assert np.abs(frames[-1] - frames[0]).mean() > 2  # it moved
    finally:
        mover.kill()
        xvfb.terminate()
        xvfb.wait(5)


MOVER = """
import time, cv2, numpy as np
cv2.namedWindow("mover", cv2.WINDOW_AUTOSIZE)
t0 = time.monotonic()
while True:
    img = np.full((240, 320, 3), 40, np.uint8)
    x = int(time.monotonic() - t0) * 40 % 280
    img[60:180, x:x + 40] = (0, 200, 255)
    cv2.imshow("mover", img)
    cv2.waitKey(30)
"""
