"""`dreamstream screensaver`: the dream in a local OpenCV window, no browser, no network.

Fullscreen (default) it behaves as a screensaver: any key, a click, or the mouse moving
more than a few pixels ends it with exit code 0, and the window goes first (the threads are
stopped after it is gone, so the screen is back at once even on a busy machine). `--window`
gives a plain window (no toolbar) where keys steer it (space: next class, s: save a
full-size PNG to the pictures folder, q/Esc: quit), with help on screen for 3 s once the
first frame is up. The dream and presenter threads are the live service's, run at a low
priority so that a saver never gets in the way; the presenter renders straight at the
screen's size, so the picture keeps zooming smoothly at the display rate even when dreaming
is slow.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .pipeline import Pipeline

log = logging.getLogger(__name__)

TITLE = "dreamstream"
MOVE_PX = 8  # mouse travel that wakes the screensaver
HELP_S = 3.0
HELP = ["space  next class", "s      save PNG", "q/Esc  quit"]


@dataclass
class ScreensaverOptions:
    window: bool = False  # a normal window with key controls instead of fullscreen
    duration: float = 0.0  # seconds; 0 = until a key/click/move
    display_fps: float = 25.0
    save_dir: Path = Path(".")  # where `s` saves (the command passes the user's pictures folder)


def window_size(dream_size: tuple[int, int]) -> tuple[int, int]:
    """--window: the dream shown at least 640 wide."""
    w, h = dream_size
    return max(w, 640), max(h, round(640 * h / w))


def screen_size() -> tuple[int, int] | None:
    """The X screen's size via Xlib, so the window can cover it even without a window manager."""
    name = ctypes.util.find_library("X11")
    if not name:
        return None
    x11 = ctypes.CDLL(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for f in (x11.XDefaultScreen, x11.XCloseDisplay):
        f.argtypes = [ctypes.c_void_p]
    for f in (x11.XDisplayWidth, x11.XDisplayHeight):
        f.argtypes = [ctypes.c_void_p, ctypes.c_int]
    display = x11.XOpenDisplay(None)
    if not display:
        return None
    try:
        screen = x11.XDefaultScreen(display)
        return x11.XDisplayWidth(display, screen), x11.XDisplayHeight(display, screen)
    finally:
        x11.XCloseDisplay(display)


def cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fill (width, height), cropping the overflow: no black bars on a screen."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):  # the presenter already renders at the window's size
        return rgb
    s = max(width / w, height / h)
    big = cv2.resize(rgb, (max(width, round(w * s)), max(height, round(h * s))), interpolation=cv2.INTER_CUBIC)
    y, x = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[y:y + height, x:x + width]


def draw_help(bgr: np.ndarray) -> None:
    scale = max(0.5, bgr.shape[0] / 600)
    for i, line in enumerate(HELP):
        org = (int(20 * scale), int((40 + 34 * i) * scale))
        cv2.putText(bgr, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), int(4 * scale), cv2.LINE_AA)
        cv2.putText(bgr, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), int(2 * scale), cv2.LINE_AA)


class Screensaver:
    def __init__(self, pipeline: Pipeline, opts: ScreensaverOptions, size: tuple[int, int]):
        """`size`: the window's (the screen's, fullscreen) size, which the presenter renders."""
        self.pipeline, self.opts, self.size = pipeline, opts, size
        self.queue, self.out = pipeline.queue, pipeline.shown
        self.wake = False
        self._mouse0: tuple[int, int] | None = None

    def _on_mouse(self, event, x, y, flags, param) -> None:
        if self.opts.window:
            return
        if event in (cv2.EVENT_LBUTTONDOWN, cv2.EVENT_RBUTTONDOWN, cv2.EVENT_MBUTTONDOWN):
            self.wake = True
        elif event == cv2.EVENT_MOUSEMOVE:
            if self._mouse0 is None:
                self._mouse0 = (x, y)
            elif abs(x - self._mouse0[0]) + abs(y - self._mouse0[1]) > MOVE_PX:
                self.wake = True

    def _open_window(self) -> None:
        cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar or status bar
        if not self.opts.window:
            cv2.setWindowProperty(TITLE, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)  # with a window manager
            cv2.moveWindow(TITLE, 0, 0)  # without one, an image the size of the screen at (0, 0)
        cv2.setMouseCallback(TITLE, self._on_mouse)

    def run(self) -> int:
        for worker in self.pipeline.workers:
            worker.nice = 10  # a saver must not get in the way (nor heat the machine)
        self.pipeline.start()
        try:
            return self._show()
        finally:
            cv2.destroyAllWindows()  # off the screen first...
            cv2.waitKey(1)
            self.pipeline.stop()  # ...then the threads

    def _show(self) -> int:
        self._open_window()
        width, height = self.size
        start, seq, shown_at = time.monotonic(), 0, None
        while True:
            frame = self.out.wait(seq, timeout=0.02)  # never long: input is read between frames
            if frame is not None:
                seq = frame.seq
                shown_at = shown_at or time.monotonic()
                bgr = cv2.cvtColor(cover(frame.rgb, width, height), cv2.COLOR_RGB2BGR)
                if self.opts.window and time.monotonic() - shown_at < HELP_S:
                    draw_help(bgr)
                cv2.imshow(TITLE, bgr)
            key = cv2.waitKey(1)
            if self.wake or (self.opts.duration and time.monotonic() - start >= self.opts.duration):
                return 0
            if key == -1:
                if self.opts.window and cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1:
                    return 0  # the window was closed
                continue
            if not self.opts.window:
                return 0  # any key wakes a screensaver
            key &= 0xFF
            if key in (ord("q"), 27):
                return 0
            if key == ord(" "):
                log.info("next: %s", self.queue.skip().label)
            elif key == ord("s") and self.out.latest() is not None:
                self.opts.save_dir.mkdir(parents=True, exist_ok=True)
                path = self.opts.save_dir / f"dream-{time.strftime('%Y%m%d-%H%M%S')}.png"
                cv2.imwrite(str(path), cv2.cvtColor(self.out.latest().rgb, cv2.COLOR_RGB2BGR))  # full size
                log.info("saved %s", path)
