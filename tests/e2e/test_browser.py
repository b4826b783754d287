"""Headless Chromium (Debian's) drives the viewer page: the picture moves, a request lands."""
import os
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import TEST_CONFIG, start_server, stop_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_DIR = Path(os.environ.get("DREAMSTREAM_ARTIFACTS", Path(__file__).parent / "artifacts"))
# DREAMSTREAM_SHOWCASE=SECONDS: dream at the default size that long before the screenshot
# (how docs/page.jpg was made); the plain test stays small and quick.
SHOWCASE_S = float(os.environ.get("DREAMSTREAM_SHOWCASE", "0"))
CONFIG = (TEST_CONFIG.replace("size = [160, 96]\nsteps = 2", "size = [480, 270]\nsteps = 5")
          .replace("hold_s = 4.0", "hold_s = 30.0")) if SHOWCASE_S else TEST_CONFIG
WIDTH = 480 if SHOWCASE_S else 160

if CHROMIUM is None and not os.environ.get("CI"):  # CI installs it (make test, as root): there it must run
    pytest.skip("Debian chromium is not installed (make test installs it as root)", allow_module_level=True)


def picture_changes(page, timeout_s: float = 30) -> bool:
    """Does the <img> show something new within timeout_s? (Polls: no race with warm-up.)"""
    first = page.locator("#stream").screenshot()
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        page.wait_for_timeout(500)
        if page.locator("#stream").screenshot() != first:
            return True
    return False


# Where the picture is drawn, from the <img>'s box, its object-fit and its natural size: the
# content can be larger than the box (cover: cropped) or of another shape (fill: stretched).
PICTURE_JS = """() => {
  const img = document.getElementById('stream'), r = img.getBoundingClientRect();
  const nw = img.naturalWidth, nh = img.naturalHeight, fit = getComputedStyle(img).objectFit;
  const s = fit === 'cover' ? Math.max(r.width / nw, r.height / nh) : Math.min(r.width / nw, r.height / nh);
  const [w, h] = fit === 'fill' ? [r.width, r.height] : [nw * s, nh * s];
  const stage = document.getElementById('stage').getBoundingClientRect();
  return {x: r.x + (r.width - w) / 2, y: r.y + (r.height - h) / 2, w, h, aspect: nw / nh,
          box: {x: r.x, y: r.y, w: r.width, h: r.height}, stage: {x: stage.x, y: stage.y, w: stage.width, h: stage.height},
          view: {w: innerWidth, h: innerHeight}};
}"""


def wait_for_picture(page) -> None:
    """Until the stream's first frame is in and the page has taken its shape (it checks a few
    times a second; meanwhile the picture is letterboxed, never stretched)."""
    page.wait_for_function("document.getElementById('stream').naturalWidth === " + str(WIDTH), timeout=30_000)
    page.wait_for_function("""() => { const img = document.getElementById('stream');
      const a = parseFloat(getComputedStyle(document.getElementById('frame')).getPropertyValue('--aspect'));
      return Math.abs(a - img.naturalWidth / img.naturalHeight) < 1e-6; }""", timeout=5_000)


def whole_picture(page) -> dict:
    """The whole picture is on screen, in its own shape: nothing cropped by the <img>'s fit,
    its box, the stage (overflow hidden) or the window; nothing stretched."""
    p = page.evaluate(PICTURE_JS)
    inside = lambda r, o: (r["x"] >= o.get("x", 0) - 0.5 and r["y"] >= o.get("y", 0) - 0.5  # noqa: E731
                           and r["x"] + r["w"] <= o.get("x", 0) + o["w"] + 0.5
                           and r["y"] + r["h"] <= o.get("y", 0) + o["h"] + 0.5)
    assert inside(p, p["box"]) and inside(p, p["stage"]) and inside(p, p["view"]), p
    assert abs(p["w"] / p["h"] - p["aspect"]) < 0.01 * p["aspect"], p
    return p


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def viewer_page(browser, server):
    """The viewer page at 1280x720, its script errors collected, once its first state is shown."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.base + "/?mjpeg=1")  # the <img> these tests measure (WebRTC: its own test)
    page.wait_for_function("document.getElementById('stats').textContent !== ''", timeout=30_000)
    return page, errors


def test_page_shows_the_dream_and_takes_a_request(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    server = start_server(tmp_path, CONFIG, ["--clips", str(tmp_path / "clips")])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            # The status line counts this page from the first pushes (it said "0 watching"
            # until the next 2-s push) and never reads more frames than are shown (40-57 did).
            page, errors = viewer_page(browser, server)
            expect(page.locator("#stats")).to_contain_text("1 watching", timeout=1_000)
            wait_for_picture(page)
            expect(page.locator("#now")).to_contain_text(re.compile(r"\w+\s+· \d+ s left"), timeout=15_000)
            shown = float(re.search(r"([\d.]+) fps", page.locator("#stats").text_content()).group(1))
            assert shown <= 25 * 1.2, page.locator("#stats").text_content()
            whole = whole_picture(page)
            assert whole["w"] > 0.6 * (1280 - 22 * 16)  # and large: it fills the room beside the panel
            assert picture_changes(page), "the picture did not change"

            page.fill("#user", "tester")
            page.fill("#text", "jellyfishes")
            page.click("#ask button[type=submit]")
            expect(page.locator("#message")).to_contain_text("jellyfish", timeout=10_000)
            expect(page.locator("#overlay")).to_contain_text("jellyfish", timeout=10_000)
            expect(page.locator("#overlay")).to_contain_text(re.compile(r"asked by tester\s+· \d+ s"))  # countdown
            assert "jellyfish" in page.title()
            expect(page.locator("#yours")).to_contain_text("now playing yours", timeout=10_000)
            page.wait_for_timeout(700)
            page.fill("#text", "goldfish")
            page.click("#ask button[type=submit]")
            yours = re.compile(r"yours \(goldfish\) plays in ~\d+ s|now playing yours")
            expect(page.locator("#yours")).to_contain_text(yours, timeout=10_000)
            expect(page.locator("#recent figure").first).to_be_visible(timeout=30_000)  # a dream ended: in the strip
            clip = page.locator("#recent figure a[href^='/clips/']").first  # ...and its clip, once written
            expect(clip).to_be_attached(timeout=30_000)
            assert server.get(clip.get_attribute("href"))[1]["Content-Type"] == "video/mp4"
            page.locator("#catalogue summary").click()
            page.fill("#filter", "jelly")
            expect(page.locator("#classlist li").first).to_have_text("jellyfish", timeout=10_000)
            page.fill("#filter", "lemon")
            page.wait_for_timeout(600)  # the cooldown between two requests from one viewer
            page.locator("#classlist li", has_text="lemon").first.click()  # a click asks for it
            expect(page.locator("#yours")).to_contain_text(re.compile(r"yours \(lemon\)|now playing yours"),
                                                          timeout=10_000)
            page.keyboard.press("Escape")

            page.wait_for_timeout(600 + 1000 * SHOWCASE_S)
            page.fill("#text", "qqxxzz")
            page.click("#ask button[type=submit]")
            expect(page.locator("#message")).to_contain_text("is not an ImageNet class", timeout=10_000)
            assert page.locator("#message button").count() > 0  # suggestions to click

            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            whole_picture(page)
            page.screenshot(path=str(SCREENSHOT_DIR / "page.png"))
            big = browser.new_page(viewport={"width": 1920, "height": 1080})
            big.goto(server.base + "/?mjpeg=1")
            wait_for_picture(big)
            assert whole_picture(big)["w"] > 0.8 * (1920 - 22 * 16)
            big.close()

            # The server restarts: the page notices, and reconnects by itself.
            ports = (int(server.base.rsplit(":", 1)[1]), int(server.ws.rsplit(":", 1)[1].strip("/")))
            rc, took = stop_server(server)
            assert rc == 0 and took < 5
            expect(page.locator("#now")).to_contain_text("reconnecting", timeout=10_000)
            server = start_server(tmp_path, CONFIG, ports=ports)
            expect(page.locator("#now")).to_contain_text(re.compile(r"\w+\s+· \d+ s"), timeout=30_000)
            assert picture_changes(page), "the picture did not come back"

            # A phone: the picture fits the width and the request box stays on screen.
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            phone.goto(server.base + "/?mjpeg=1")
            wait_for_picture(phone)
            box = phone.locator("#ask").bounding_box()
            img = whole_picture(phone)
            assert box["y"] + box["height"] <= 844 and img["w"] <= 390
            assert img["y"] < box["y"] and img["w"] >= 380  # the picture on top, the full width
            expect(phone.locator("#now")).to_contain_text(re.compile(r"\d+ s left"), timeout=15_000)
            # the caption: off the picture, one line each for what plays and what is next
            caption = phone.locator("#overlay").bounding_box()
            assert not overlaps({"x": caption["x"], "y": caption["y"], "w": caption["width"], "h": caption["height"]},
                                img), (caption, img)
            for line in ("#now", "#next"):
                height = phone.locator(line).bounding_box()["height"]
                line_height = phone.evaluate(f"parseFloat(getComputedStyle(document.querySelector('{line}')).fontSize)")
                assert height < 1.8 * line_height, (line, height, line_height)
            phone.fill("#text", "goldfish")
            phone.locator("#ask button[type=submit]").tap()
            expect(phone.locator("#yours")).to_contain_text(yours, timeout=10_000)
            expect(phone.locator("#recent figure").first).to_be_visible(timeout=30_000 + 1000 * SHOWCASE_S)
            phone.wait_for_timeout(1000 * SHOWCASE_S)
            phone.screenshot(path=str(SCREENSHOT_DIR / "phone.png"))
            browser.close()
            assert not errors, errors
    finally:
        rc, took = stop_server(server)
        assert rc == 0 and took < 5


def test_the_first_minutes_on_the_page(tmp_path):
    """What a new user met (issue 47): the time to a queued request while another of theirs
    plays, a request box wide enough to read, a dark strip, a status line that does not
    pretend to be live while the server is gone, a shared name and a group said plainly."""
    from playwright.sync_api import expect, sync_playwright

    server = start_server(tmp_path, TEST_CONFIG.replace("hold_s = 4.0", "hold_s = 60.0"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page, errors = viewer_page(browser, server)
            assert page.locator("#text").bounding_box()["width"] >= 250  # "jellyfish + volcano" fits
            assert page.evaluate("getComputedStyle(document.getElementById('recent')).scrollbarColor") != "auto"

            page.fill("#text", "pizza")
            page.click("#ask button[type=submit]")
            expect(page.locator("#yours")).to_contain_text("now playing yours", timeout=10_000)
            page.wait_for_timeout(700)  # the cooldown
            page.fill("#text", "missile")
            page.click("#ask button[type=submit]")
            expect(page.locator("#message")).to_contain_text("number 1 in the queue", timeout=10_000)
            expect(page.locator("#message button")).to_have_text("missile (projectile)")  # the other one, to click
            expect(page.locator("#yours")).to_contain_text(
                re.compile(r"yours \(missile \(rocket\)\) plays in ~\d+ s · now playing yours"))
            page.wait_for_timeout(700)
            page.fill("#text", "dog")
            page.click("#ask button[type=submit]")
            expect(page.locator("#message")).to_contain_text("dog (118 kinds) is number 2 in the queue",
                                                             timeout=10_000)

            rc, took = stop_server(server)
            assert rc == 0 and took < 5
            expect(page.locator("#now")).to_contain_text("reconnecting", timeout=10_000)
            expect(page.locator("#stats")).to_have_text("server unreachable: reconnecting")
            assert page.locator("#next").text_content() == "" and page.locator("#yours").text_content() == ""
            browser.close()
            assert not errors, errors
    finally:
        if server.proc.poll() is None:
            stop_server(server)


def test_page_plays_over_webrtc_falls_back_to_mjpeg_and_comes_back_after_a_restart(tmp_path):
    """The page plays the picture over WebRTC (WHEP) in a <video>, MJPEG stopped; a page that
    cannot get WebRTC (here the server's one-per-address cap) plays MJPEG and says so; after a
    server restart WebRTC comes back by itself."""
    from playwright.sync_api import expect, sync_playwright

    server = start_server(tmp_path, TEST_CONFIG + "[webrtc]\nmax_per_ip = 1\n")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.base + "/")
            expect(page.locator("#stats")).to_contain_text("WebRTC", timeout=30_000)
            assert page.locator("#live").is_visible() and not page.locator("#stream").is_visible()
            assert page.evaluate("document.getElementById('live').videoWidth") == WIDTH
            painted = page.evaluate("""() => new Promise((done) => { let n = 0; const v = document.getElementById('live');
                const count = () => { if (++n === 10) done(n); else v.requestVideoFrameCallback(count); };
                v.requestVideoFrameCallback(count); })""")
            assert painted == 10  # frames keep coming
            expect(page.locator("#stats")).to_contain_text("1 watching", timeout=5_000)  # a WebRTC viewer counts
            assert server.get_json("/healthz")["webrtc"]["peers"] == 1
            assert server.get_json("/api/state")["viewers"] == 1  # and no MJPEG beside it

            second = browser.new_page(viewport={"width": 800, "height": 600})  # past the cap: MJPEG
            second.goto(server.base + "/")
            expect(second.locator("#stats")).to_contain_text("MJPEG (WebRTC unavailable)", timeout=30_000)
            assert second.locator("#stream").is_visible() and not second.locator("#live").is_visible()
            second.close()

            ports = (int(server.base.rsplit(":", 1)[1]), int(server.ws.rsplit(":", 1)[1].strip("/")))
            rc, _ = stop_server(server)
            assert rc == 0
            expect(page.locator("#now")).to_contain_text("reconnecting", timeout=10_000)
            server = start_server(tmp_path, TEST_CONFIG + "[webrtc]\nmax_per_ip = 1\n", ports=ports)
            expect(page.locator("#stats")).to_contain_text("WebRTC", timeout=30_000)
            assert page.locator("#live").is_visible()
            browser.close()
            assert not errors, errors
    finally:
        if server.proc.poll() is None:
            stop_server(server)


EVIL_PAGE = """<!doctype html><title>evil</title>
<form id="f" action="{base}/api/request" method="POST" enctype="text/plain">
<input name='{{"text": "broccoli", "x": "' value='"}}'></form>
<script>
const body = JSON.stringify({{text: "broccoli", user: "evil"}});
Promise.allSettled([
  fetch("{base}/api/request", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}}),
  fetch("{base}/api/request", {{method: "POST", mode: "cors", headers: {{"Content-Type": "application/json"}}, body}}),
]).then(() => {{ document.title = "sent"; }});
</script>"""


def test_another_site_cannot_queue_dreams_through_a_visitors_browser(tmp_path):
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    server = start_server(tmp_path, TEST_CONFIG)
    site = tmp_path / "evil"
    site.mkdir()
    (site / "index.html").write_text(EVIL_PAGE.format(base=server.base))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(site))  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
            page.wait_for_function("document.title === 'sent'", timeout=15_000)  # both fetches settled
            with page.expect_navigation():
                page.evaluate("document.getElementById('f').submit()")  # a plain cross-site form post
            assert "forbidden" in page.content() or "other web pages" in page.content()
            browser.close()
        state = server.get_json("/api/state")
        labels = [state["target"]["label"]] + [q["label"] for q in state["queue"]]
        assert "broccoli" not in labels, labels
        assert server.log.read_text().count("broccoli") == 0
    finally:
        evil.shutdown()
        rc, _ = stop_server(server)
        assert rc == 0


LAYOUT = """() => {
  const r = document.getElementById('picture').getBoundingClientRect(), d = document.scrollingElement;
  return {box: [r.x, r.y, r.width, r.height], scroll: [d.scrollWidth, d.scrollHeight],
          text: document.body.innerText.trim(), controls: document.querySelectorAll('input, button, form').length};
}"""


def screenshot(page, name: str) -> np.ndarray:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENSHOT_DIR / name))
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def test_view_is_the_picture_alone_filling_the_window_with_an_optional_overlay(tmp_path):
    """/view for an OBS Browser Source: at the stream's own aspect the picture covers the
    window exactly (a letterbox bar would be pure black from end to end); at another it is
    shown whole with black bars, or cropped with ?fit=cover."""
    from playwright.sync_api import expect, sync_playwright

    server = start_server(tmp_path, TEST_CONFIG, ["--output-size", "640x360"])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for w, h in ((1280, 720), (1920, 1080)):
                page = browser.new_page(viewport={"width": w, "height": h})
                page.goto(server.base + "/view?mjpeg=1")  # the <img>; WebRTC's <video> below
                page.wait_for_function("document.getElementById('picture').naturalWidth === 640", timeout=30_000)
                assert page.evaluate(LAYOUT) == {"box": [0, 0, w, h], "scroll": [w, h], "text": "", "controls": 0}
                shot = screenshot(page, f"view-{w}x{h}.png")
                assert shot.shape == (h, w, 3)
                for edge in (shot[0], shot[-1], shot[:, 0], shot[:, -1]):
                    assert edge.max() > 8, "a black bar: the picture does not reach this edge"
                page.close()
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(server.base + "/view")  # over WebRTC once it connects: the <video>, filling the window too
            page.wait_for_function("""() => { const v = document.getElementById('live');
                return !v.hidden && v.videoWidth === 640 && document.getElementById('picture').hidden; }""",
                                   timeout=30_000)
            assert page.evaluate("document.getElementById('live').getBoundingClientRect().width") == 1280
            shot = screenshot(page, "view-webrtc.png")
            for edge in (shot[0], shot[-1], shot[:, 0], shot[:, -1]):
                assert edge.max() > 8, "a black bar: the picture does not reach this edge"
            page.close()
            square = browser.new_page(viewport={"width": 720, "height": 720})
            square.goto(server.base + "/view?mjpeg=1")
            square.wait_for_function("document.getElementById('picture').naturalWidth === 640", timeout=30_000)
            shot = screenshot(square, "view-720x720.png")
            assert shot[0].max() < 5 and shot[-1].max() < 5 and shot[360].max() > 8  # whole, bars above and below
            square.goto(server.base + "/view?fit=cover&mjpeg=1")
            square.wait_for_function("document.getElementById('picture').naturalWidth === 640", timeout=30_000)
            shot = screenshot(square, "view-720x720-cover.png")
            assert shot[0].max() > 8 and shot[-1].max() > 8  # filled, cropped at the sides
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(server.base + "/view?overlay=1")
            expect(page.locator("#playing")).to_contain_text(re.compile(r"\w+\s+· \d+ s"), timeout=15_000)
            box = page.locator("#caption").bounding_box()
            assert box["x"] > 0 and box["y"] + box["height"] < 720 and box["width"] < 1280 * 0.8 + 1
            assert page.evaluate(LAYOUT)["scroll"] == [1280, 720]
            screenshot(page, "view-overlay.png")
            browser.close()
    finally:
        rc, _ = stop_server(server)
        assert rc == 0
