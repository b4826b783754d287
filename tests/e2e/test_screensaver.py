"""The screensaver on a real X server (Xvfb): it covers the screen, moves, and wakes on input."""
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

NEEDED = ("Xvfb", "xdotool", "import")
if any(shutil.which(t) is None for t in NEEDED) and not os.environ.get("CI"):
    pytest.skip("needs Debian xvfb, xdotool and imagemagick (make test installs them as root)",
                allow_module_level=True)

from stream.desktop.screensaver import HELP, draw_plate  # noqa: E402

SCREEN = (320, 200)
ARTIFACTS = Path(__file__).parent / "artifacts"
SMALL = ["--size", "64x48", "--seed", "3", "--device", "cpu"]


def xvfb(size: tuple[int, int]):
    for n in range(90, 120):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    server = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{n}").exists():
            break
        time.sleep(0.05)
    yield f":{n}"
    server.terminate()
    server.wait(5)


@pytest.fixture(scope="module")
def display():
    yield from xvfb(SCREEN)


@pytest.fixture(scope="module")
def desktop():
    """A screen that holds the whole --window (640x480 at (0, 0), no window manager)."""
    yield from xvfb((800, 600))


def run(display, *args, cwd=None, home=None, env=None):
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_PICTURES_DIR"}, "DISPLAY": display,
           "PYTHONUNBUFFERED": "1", **({"HOME": str(home)} if home else {}), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "stream", "screensaver", *SMALL, *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Output:
    """What a running saver prints, collected as it comes (reading the pipe would block)."""

    def __init__(self, proc):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(proc.stdout), daemon=True)
        self._thread.start()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never printed:\n{''.join(self.lines)}")

    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)


def x(display, *cmd, check=True):
    return subprocess.run(cmd, env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          check=check, timeout=20)


def wait_for_window(display, proc, timeout=60) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stdout.read()
        found = x(display, "xdotool", "search", "--name", "dreamstream", check=False).stdout.split()
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("no dreamstream window appeared")


def press(display, key: str) -> bool:
    """Send a key to the saver's window(s), looked up afresh (Qt may replace a window it made).
    True if there was a window to send it to: xdotool's own status cannot say, since a key that
    ends the saver takes the window away before xdotool has sent the key's release."""
    windows = x(display, "xdotool", "search", "--name", "dreamstream", check=False).stdout.split()
    for win in windows:
        x(display, "xdotool", "windowfocus", "--sync", win, check=False)
        x(display, "xdotool", "key", "--window", win, key, check=False)
    return bool(windows)


def screenshot(display, path: Path) -> np.ndarray:
    x(display, "import", "-window", "root", str(path))
    return cv2.imread(str(path))


def filled(shot: np.ndarray) -> bool:
    """Not black anywhere: a picture fills it (an unpainted window shows the black screen)."""
    return bool((shot.max(axis=2) > 10).mean() > 0.99)


def wait_for_picture(display, tmp_path, proc, timeout=60) -> np.ndarray:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        shot = screenshot(display, tmp_path / "probe.png")
        if filled(shot):
            return shot
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "screensaver_never_filled.png"), shot)
    proc.kill()
    raise AssertionError(f"the screen never filled (artifacts/screensaver_never_filled.png):\n{proc.stdout.read()}")


def plate_at(shot: np.ndarray, lines: list[str], corner: str) -> bool:
    """Is the saver's dark plate for `lines` on the (window-sized) screenshot? Where it would
    be is asked of the saver's own drawing; at its right edge and its edge toward the middle
    of the picture, the picture just inside is a third of the picture just outside (the
    dream is smooth over a few pixels: without a plate the two are alike)."""
    x0, y0, w, h = draw_plate(np.zeros_like(shot), lines, corner)
    g = shot.astype(float).mean(axis=2) + 1
    edge_in, edge_out = (y0 + 2, y0 - 3) if corner == "bottom" else (y0 + h - 3, y0 + h + 2)
    inside = np.concatenate([g[y0 + 2:y0 + h - 2, x0 + w - 3], g[edge_in, x0 + 2:x0 + w - 2]])
    outside = np.concatenate([g[y0 + 2:y0 + h - 2, x0 + w + 2], g[edge_out, x0 + 2:x0 + w - 2]])
    return bool(np.median(inside / outside) < 0.5)


def window_shot(display, tmp_path) -> np.ndarray:
    return screenshot(display, tmp_path / "window.png")[:480, :640]  # --window: 640x480 at (0, 0)


def test_fullscreen_covers_the_screen_moves_and_any_key_exits(display, tmp_path):
    proc = run(display, "--duration", "120")
    try:
        wait_for_window(display, proc)
        first = wait_for_picture(display, tmp_path, proc)
        assert first.shape[:2] == (SCREEN[1], SCREEN[0])
        for _ in range(40):  # poll: right after start the second dreamed frame may still be warming up
            time.sleep(0.5)
            later = screenshot(display, tmp_path / "later.png")
            assert filled(later)
            if np.abs(first.astype(int) - later.astype(int)).mean() > 1.0:
                break
        else:
            raise AssertionError("the picture did not move in 20 s")
        x(display, "xdotool", "key", "a")
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_nudge_of_the_mouse_keeps_it_and_one_move_ends_it(display, tmp_path):
    proc = run(display, "--duration", "120")
    try:
        wait_for_window(display, proc)
        wait_for_picture(display, tmp_path, proc)
        where = dict(v.split(":") for v in x(display, "xdotool", "getmouselocation").stdout.split()[:2])
        x(display, "xdotool", "mousemove", str(int(where["x"]) + 2), str(int(where["y"]) + 1))  # a nudge
        time.sleep(1.0)
        assert proc.poll() is None
        x(display, "xdotool", "mousemove", "10", "10")  # one move: the first event counts
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_window_mode_first_picture_hint_caption_keys_and_saving(desktop, tmp_path):
    """A picture at once (not an empty window), the keys on a plate, "saved to ..." on screen,
    the class named when it changes, the pictures folder from XDG_PICTURES_DIR."""
    config = tmp_path / "saver.toml"
    config.write_text('playlist = ["volcano"]\n[screensaver]\ncaption_s = 2.0\n')
    pictures = tmp_path / "my pictures"
    proc = run(desktop, "--config", str(config), "--window", "--playlist", "volcano, jellyfish, pizza",
               "--in-order", "--duration", "120", cwd=tmp_path, home=tmp_path,
               env={"XDG_PICTURES_DIR": str(pictures)})
    out = Output(proc)
    try:
        wait_for_window(desktop, proc)
        # The first picture is up with the window: an empty Qt window is black with two white
        # bars, and it stayed so until the model had loaded and the first frame was dreamed
        # (also when Qt was asked to paint after the first wait for a key: a busy machine).
        end = time.monotonic() + 1.0
        while not filled(window_shot(desktop, tmp_path)):
            assert time.monotonic() < end, f"the window opened without a picture:\n{''.join(out.lines)}"
            time.sleep(0.05)

        end = time.monotonic() + 60  # the keys, on a plate, once the dream is up
        while not plate_at(shot := window_shot(desktop, tmp_path), HELP, "top"):
            assert time.monotonic() < end, "no key hint on a plate"
            time.sleep(0.1)
        ARTIFACTS.mkdir(exist_ok=True)
        cv2.imwrite(str(ARTIFACTS / "screensaver_hint.png"), shot)
        time.sleep(2.5)  # the first caption and the hint have gone

        assert press(desktop, "s")
        out.wait_for("saved ")
        saved = list(pictures.glob("dream-*.png"))
        assert saved, f"s did not save into XDG_PICTURES_DIR:\n{out.text()}"
        assert cv2.imread(str(saved[0])).shape[:2] == (480, 640)  # the window's full size, not the dream's 64x48
        message = [f"saved to {saved[0]}"]
        end = time.monotonic() + 3.0  # the line is printed as the file is written; the plate comes with the next paint
        while not plate_at(window_shot(desktop, tmp_path), message, "bottom"):
            assert time.monotonic() < end, "no 'saved to ...' on screen"
            time.sleep(0.1)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(desktop, ARTIFACTS / "screensaver_window.png")  # a plain window: no toolbar, no status bar

        time.sleep(3.2)  # the message has gone
        assert not plate_at(window_shot(desktop, tmp_path), ["jellyfish"], "bottom")
        assert press(desktop, "space")
        out.wait_for("next: jellyfish")
        end = time.monotonic() + 1.5  # the new class, named on the picture for caption_s
        while not plate_at(window_shot(desktop, tmp_path), ["jellyfish"], "bottom"):
            assert time.monotonic() < end, "the new class was not named on the picture"
        assert proc.poll() is None, out.text()
        assert press(desktop, "q")
        assert proc.wait(15) == 0
        text = out.text()
        assert f"saved {saved[0]}" in text, text
        assert "QFont" not in text and "qt." not in text.lower(), text  # no Qt noise
    finally:
        if proc.poll() is None:
            proc.kill()
    quick = run(desktop, "--duration", "3")
    assert quick.wait(60) == 0


def gone_after(display, proc, action) -> tuple[float, float]:
    """Seconds from `action` until the window is gone, and until the process has exited."""
    t0 = time.monotonic()
    action()
    window_gone = None
    while time.monotonic() - t0 < 15:
        found = x(display, "xdotool", "search", "--name", "dreamstream", check=False).stdout.split()
        if window_gone is None and not found:
            window_gone = time.monotonic() - t0
        if proc.poll() is not None and window_gone is not None:
            return window_gone, time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError("the screensaver did not end")


def test_wakes_at_once_on_a_busy_machine(display, tmp_path):
    """Two CPU-bound processes beside it (started once the picture is up: the saver itself runs
    at a low priority), as on a machine doing real work: a key and a single mouse move still
    clear the screen at once, and the process is gone soon after (its threads, mid-step at a
    low priority, are not waited for). Generous bounds here; measured figures in README."""
    for action in ("key", "mousemove"):
        proc = run(display, "--duration", "120")
        hogs = []
        try:
            wait_for_window(display, proc)
            wait_for_picture(display, tmp_path, proc)
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            time.sleep(2)
            if action == "key":
                window, exited = gone_after(display, proc, lambda: x(display, "xdotool", "key", "a"))
            else:
                window, exited = gone_after(display, proc, lambda: x(display, "xdotool", "mousemove", "10", "10"))
            print(f"busy machine, {action}: window gone after {window:.3f} s, process after {exited:.3f} s")
            assert window < 1.0 and exited - window < 1.0, (action, window, exited)
            assert proc.returncode == 0
        finally:
            for h in hogs:
                h.kill()
            if proc.poll() is None:
                proc.kill()


def test_bad_input_and_no_display_are_one_line_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    nowhere = {**env, "DISPLAY": ":59"}  # set, but no X server there: Qt used to abort (exit 134)
    cases = [(["--playlist", "volcano, qqxxzz"], "is not an ImageNet class", env),
             (["--playlist", "nofile.txt"], "--playlist nofile.txt: no such file", env),
             (["--duration", "0"], "--duration 0: give seconds above 0", env),
             ([], "no display", env),
             ([], "cannot open display :59", nowhere)]
    for args, text, where in cases:
        r = subprocess.run([sys.executable, "-m", "stream", "screensaver", *SMALL, *args], env=where,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr, (args, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_help_states_the_screensavers_own_defaults():
    r = subprocess.run([sys.executable, "-m", "stream", "screensaver", "--help"], capture_output=True, text=True,
                       timeout=60)
    text = " ".join(r.stdout.split())  # argparse wraps lines
    assert r.returncode == 0
    assert "(default: configs/screensaver.toml)" in text and "seconds per class (default 45)" in text, text
    assert "configs/default.toml" not in text


def test_pictures_folder_from_the_environment_first(tmp_path, monkeypatch):
    from stream.config import pictures_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_PICTURES_DIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert pictures_dir() == tmp_path / "Pictures"
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "user-dirs.dirs").write_text('XDG_PICTURES_DIR="$HOME/Bilder"\n')
    assert pictures_dir() == tmp_path / "Bilder"
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "env pics"))
    assert pictures_dir() == tmp_path / "env pics"


SHOW = """import sys, cv2, numpy as np
cv2.namedWindow("dreamstream", cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
cv2.moveWindow("dreamstream", int(sys.argv[2]), 0)  # side by side: an obscured part reads as anything
picture = np.full((200, 320, 3), int(sys.argv[1]), np.uint8)
while True:
    cv2.imshow("dreamstream", picture)
    cv2.waitKey(20)
"""


def test_the_paint_watch_reads_the_window_back_and_maps_a_black_one_again(desktop, monkeypatch, caplog):
    """Against real OpenCV windows on the X server: the server's colours are read back (a grey
    window reads grey, a black one black) and a window is found by name and pid; told that
    grey was drawn into the black one, the watch maps it again (it stays readable) and, its
    tries spent, says once that the window does not show what is drawn and stops looking."""
    from stream.desktop.xdisplay import PaintWatch, XDisplay, sample_points
    monkeypatch.setenv("DISPLAY", desktop)
    env = {**os.environ, "QT_QPA_FONTDIR": "/usr/share/fonts", "QT_LOGGING_RULES": "*.debug=false;qt.*=false"}
    grey, black = (subprocess.Popen([sys.executable, "-c", SHOW, v, at], env=env)
                   for v, at in (("128", "0"), ("0", "400")))
    xd = XDisplay.open()
    try:
        windows, shows, end, remapped = {}, {"grey": (128,) * 3, "black": (0,) * 3}, time.monotonic() + 30, \
            time.monotonic()
        while time.monotonic() < end:
            for name, proc in (("grey", grey), ("black", black)):
                windows[name] = windows.get(name) or xd.find_window("dreamstream", proc.pid)
            reads = {name: xd.colours(w, sample_points(320, 200)) if w else [] for name, w in windows.items()}
            if all(reads[name] == [shows[name]] * 9 for name in shows):
                break
            if time.monotonic() - remapped > 3:  # the race this watch is for
                for name in shows:
                    if windows[name] and reads[name] != [shows[name]] * 9:
                        xd.remap(windows[name])
                remapped = time.monotonic()
            time.sleep(0.1)
        else:
            raise AssertionError(f"the windows never showed their pictures: {reads}")
        assert xd.find_window("dreamstream") is None  # this process has no window
        watch = {name: PaintWatch(xd, "dreamstream", (320, 200), every=0, tries=1) for name in shows}
        for name, w in watch.items():
            w.window = windows[name]  # another process's: found by pid above
        grey_picture = np.full((200, 320, 3), 128, np.uint8)
        caplog.set_level("INFO", logger="stream.desktop.xdisplay")
        for name in ("grey", "black"):
            watch[name].drawn(grey_picture)
            for _ in range(4):
                watch[name].check()
            if name == "grey":
                assert watch["grey"].watching and watch["grey"].tries == 1 and not caplog.records
        said = [r.getMessage() for r in caplog.records]
        assert watch["black"].tries == 0 and not watch["black"].watching, said
        assert len(said) == 2 and "mapping it again" in said[0] and "does not show what is drawn" in said[1], said
        assert xd.colours(watch["black"].window, [(160, 100)]) == [(0, 0, 0)]  # mapped again, and readable
        watch["black"].drawn(grey_picture)
        watch["black"].check()  # no longer watching: nothing more said
        assert len(caplog.records) == 2
    finally:
        xd.close()
        for proc in (grey, black):
            proc.kill()
            proc.wait()
