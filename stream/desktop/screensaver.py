"""`dreamstream screensaver`: the dream in a local OpenCV window, no browser, no network.

Fullscreen (default) it behaves as a screensaver: any key, a click, or the mouse moving
more than a few pixels from where it was when the saver started ends it with exit code 0,
and the window goes first (the threads are told to stop after it is gone, so the screen is
back at once even on a busy machine). `--window` gives a plain window (no toolbar) where
keys steer it (space: next class, s: save a full-size PNG to the pictures folder, q/Esc:
quit), with the keys on screen for a few seconds once the first frame is up. Text on the
picture sits on a dark plate: OpenCV 5's fonts change their advance with the stroke
thickness, so a thick dark copy under the text (an "outline") no longer lines up with it.

The window opens with a first picture at once (mid-grey, where the dream starts, with what
it dreams), before the model loads: an empty Qt window is black with two white bars until
its first image. While the model loads the window is kept live (painted when the X server
asks, a key still ends it): Qt paints only while OpenCV waits for a key, and a window mapped
after that first wait stayed black until the dream began. Even so Qt 5.15 on a busy machine
sometimes maps the window and never paints it: the window is read back from the X server
for its first seconds and mapped again when it does not show the picture (stream.desktop.xdisplay).
The dream and presenter threads are the live service's, run at a low priority so that a
saver never gets in the way; the presenter renders straight at the screen's size, so the
picture keeps zooming smoothly at the display rate even when dreaming is slow.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..spine.pipeline import Pipeline
from .xdisplay import PaintWatch, XDisplay

log = logging.getLogger(__name__)

TITLE = "dreamstream"
MOVE_PX = 8  # mouse travel that wakes the screensaver
HELP_S = 3.0
# the window's pixels are read back (`PaintWatch`) from the first picture until this long
# into the dream, every CHECK_S, and it is mapped again at most REMAPS times
WATCH_S, CHECK_S, REMAPS = 10.0, 0.25, 3
MESSAGE_S = 3.0  # "saved to ..." stays this long
HELP = ["space\tnext class", "s\tsave PNG", "q/Esc\tquit"]
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class ScreensaverOptions:
    window: bool = False  # a normal window with key controls instead of fullscreen
    duration: float | None = None  # seconds; None = until a key/click/move
    display_fps: float = 25.0
    save_dir: Path = Path(".")  # where `s` saves (the command passes the user's pictures folder)
    caption_s: float = 4.0  # the class is named this long when it changes; 0 = never


def window_size(dream_size: tuple[int, int]) -> tuple[int, int]:
    """--window: the dream shown at least 640 wide."""
    w, h = dream_size
    return max(w, 640), max(h, round(640 * h / w))


def cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fill (width, height), cropping the overflow: no black bars on a screen."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):  # the presenter already renders at the window's size
        return rgb
    s = max(width / w, height / h)
    big = cv2.resize(rgb, (max(width, round(w * s)), max(height, round(h * s))), interpolation=cv2.INTER_CUBIC)
    y, x = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[y:y + height, x:x + width]


def draw_plate(bgr: np.ndarray, lines: list[str], corner: str = "top") -> tuple[int, int, int, int]:
    """White text on a dark plate in the top-left (or bottom-left) corner, in place; returns
    the plate's (x, y, w, h). The plate, not an outline, keeps the text legible on any
    picture. A tab splits a line into two columns ("space\tnext class")."""
    s = max(0.5, bgr.shape[0] / 600)
    size, thick = 0.8 * s, max(1, round(1.5 * s))
    width = lambda t: cv2.getTextSize(t, FONT, size, thick)[0][0]  # noqa: E731
    (_, th), base = cv2.getTextSize("Ag", FONT, size, thick)
    pad, gap, margin = round(10 * s), round(8 * s), round(12 * s)
    room = bgr.shape[1] - 2 * margin - 2 * pad
    cells = [line.split("\t", 1) if "\t" in line else [shorten(line, room, width)] for line in lines]
    first = max((width(c[0]) for c in cells if len(c) == 2), default=0) + round(14 * s)  # the second column
    w = max(width(c[0]) if len(c) == 1 else first + width(c[1]) for c in cells) + 2 * pad
    h = len(lines) * (th + base) + gap * (len(lines) - 1) + 2 * pad
    x0, y0 = margin, margin if corner == "top" else max(0, bgr.shape[0] - margin - h)
    w, h = min(w, bgr.shape[1] - x0), min(h, bgr.shape[0] - y0)
    plate = bgr[y0:y0 + h, x0:x0 + w]
    plate[:] = (plate * 0.3).astype(np.uint8)
    y = y0 + pad
    for cell in cells:
        y += th
        for text, x in zip(cell, (x0 + pad, x0 + pad + first)):
            cv2.putText(bgr, text, (x, y), FONT, size, (255, 255, 255), thick, cv2.LINE_AA)
        y += base + gap
    return x0, y0, w, h


def shorten(text: str, room: int, width) -> str:
    """`text` in `room` pixels (`width(text)` measures): what comes before a path (else its first
    word), "...", and as much of its end as fits ("saved to .../Pictures/dream-1.png": the
    file's name is what matters)."""
    if width(text) <= room:
        return text
    cut = text.find("/") if "/" in text else text.find(" ") + 1
    head, tail = text[:cut], text[cut:]
    while tail and width(f"{head}...{tail}") > room:
        tail = tail[1:]
    return f"{head}...{tail}"


class Screensaver:
    def __init__(self, opts: ScreensaverOptions, size: tuple[int, int], x: XDisplay | None = None):
        """`size`: the window's (the screen's, fullscreen) size, which the presenter renders;
        `x`: the X server, to see that the window really shows the picture (kept open)."""
        self.opts, self.size = opts, size
        self.watch = PaintWatch(x, TITLE, size, CHECK_S, REMAPS) if x is not None else None
        self.wake = False
        self._mouse0: tuple[int, int] | None = None
        self.message, self._message_until = "", 0.0

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

    def open(self, label: str, pointer: tuple[int, int] | None = None) -> None:
        """The window, with a first picture at once: call it before the slow parts (the model).
        `pointer`: where the pointer is on the screen now (`XDisplay.pointer`), if known."""
        cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar or status bar
        if not self.opts.window:
            cv2.setWindowProperty(TITLE, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)  # with a window manager
            cv2.moveWindow(TITLE, 0, 0)  # without one, an image the size of the screen at (0, 0)
            # fullscreen at (0, 0): window and screen coordinates agree, so the pointer's
            # position now is where a move is measured from, and the first move counts
            self._mouse0 = pointer
        cv2.setMouseCallback(TITLE, self._on_mouse)
        first = np.full((self.size[1], self.size[0], 3), 128, np.uint8)  # the dream starts from mid-grey
        draw_plate(first, [f"dreaming {label}..."], "bottom")
        self._draw(first)
        cv2.waitKey(1)

    def _draw(self, bgr: np.ndarray) -> None:
        cv2.imshow(TITLE, bgr)
        if self.watch:
            self.watch.drawn(bgr)

    def _keep_painted(self, until: float | None = None) -> None:
        if self.watch:
            self.watch.watching = self.watch.watching and (until is None or time.monotonic() < until)
            self.watch.check()

    def meanwhile(self, work):
        """`work()` (the slow start: the model) on another thread while this one keeps the window
        live. Its result; None if the saver was ended meanwhile (a key, or the window closed)."""
        result = Future()

        def call():
            try:
                result.set_result(work())
            except BaseException as e:  # raised again by result() here, on the command's thread
                result.set_exception(e)

        # a daemon, not an executor's worker: a key mid-load ends the process without waiting
        threading.Thread(target=call, name="load", daemon=True).start()
        while not result.done():
            self._keep_painted()
            if self._ends(cv2.waitKey(20)):
                return None
        return result.result()

    def _ends(self, key: int) -> bool:
        """Does this key (or its absence, -1) end the saver: any key, a click or a move when
        fullscreen; q/Esc or the window closed when in a window."""
        if self.wake:
            return True
        if key == -1:
            return self.opts.window and cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1
        return not self.opts.window or key & 0xFF in (ord("q"), 27)

    def run(self, pipeline: Pipeline) -> int:
        """Show the dream until a key (or the duration); returns the exit code once the window
        is gone and the threads are told to stop, without waiting for them: a step at a low
        priority beside busy processes can take seconds (`pipeline.stop()` waits)."""
        for worker in pipeline.workers:
            worker.nice = 10  # a saver must not get in the way (nor heat the machine)
        pipeline.start()
        try:
            return self._show(pipeline)
        finally:
            cv2.destroyAllWindows()  # off the screen first...
            cv2.waitKey(1)
            for worker in pipeline.workers:  # ...then the threads
                worker.stop_soon()
            pipeline.dreamed.close()
            pipeline.shown.close()

    def _say(self, text: str) -> None:
        self.message, self._message_until = text, time.monotonic() + MESSAGE_S

    def _show(self, pipeline: Pipeline) -> int:
        queue, out = pipeline.queue, pipeline.shown
        width, height = self.size
        start, seq, shown_at = time.monotonic(), 0, None
        label, caption_until = queue.current().label, 0.0
        while True:
            frame = out.wait(seq, timeout=0.02)  # never long: input is read between frames
            if frame is not None:
                seq, now = frame.seq, time.monotonic()
                if shown_at is None:
                    shown_at, caption_until = now, now + self.opts.caption_s
                playing = queue.current().label
                if playing != label:  # name the new class, briefly
                    label, caption_until = playing, now + self.opts.caption_s
                bgr = cv2.cvtColor(cover(frame.rgb, width, height), cv2.COLOR_RGB2BGR)
                if self.opts.window and now - shown_at < HELP_S:
                    draw_plate(bgr, HELP)
                if now < self._message_until:
                    draw_plate(bgr, [self.message], "bottom")
                elif now < caption_until:
                    draw_plate(bgr, [label], "bottom")
                self._draw(bgr)
            if shown_at is not None:
                self._keep_painted(until=shown_at + WATCH_S)
            key = cv2.waitKey(1)
            if self._ends(key) or (self.opts.duration and time.monotonic() - start >= self.opts.duration):
                return 0
            key &= 0xFF
            if key == ord(" "):
                log.info("next: %s", queue.skip().label)
            elif key == ord("s") and out.latest() is not None:
                self._save(out.latest().rgb)

    def _save(self, rgb: np.ndarray) -> None:
        """The picture at the window's size into the pictures folder; where it went (or why
        not) on screen and in the log."""
        path = self.opts.save_dir / f"dream-{time.strftime('%Y%m%d-%H%M%S')}.png"
        try:
            self.opts.save_dir.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError("the image could not be written")
        except OSError as e:
            log.warning("cannot save %s: %s", path, getattr(e, "strerror", None) or e)
            self._say(f"cannot save to {self.opts.save_dir}")
            return
        log.info("saved %s", path)
        self._say(f"saved to {path}")
