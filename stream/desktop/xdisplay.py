"""The X server, asked directly through Xlib (ctypes, no extra package) for what OpenCV's Qt
window cannot tell: the screen's size, where the pointer is, and what the window really shows.

That last one is for a Qt 5.15 race: on a busy machine Qt sometimes maps its window and then
never paints it (found on Xvfb beside four CPU-bound processes: 10 of 30 plain OpenCV windows
stayed black for 30 s and more while frames were shown; OpenCV's window properties said
nothing was wrong). Mapping the window again made Qt paint it in 10 of 10; an Expose event
(XClearArea) did not, 0 of 4. So the saver reads a few of the window's pixels back from the
server and, when they are not what it drew, maps the window again (`PaintWatch`). An
unpainted window is not always black: it keeps whatever the server last had there.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time

import numpy as np

log = logging.getLogger(__name__)

ZPIXMAP = 2
ALL_PLANES = ctypes.c_ulong(-1).value
ANY_PROPERTY_TYPE = 0
p = ctypes.POINTER
TOLERANCE = 48  # a channel this far from every recent picture's is not that picture
ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


@ERROR_HANDLER
def _ignore_error(display, event) -> int:
    """A window can go between two requests (it is another client's): Xlib's default handler
    would end the process for that."""
    return 0


class XImage(ctypes.Structure):
    """The head of Xlib's XImage: enough to turn a pixel into its colour."""
    _fields_ = [(name, ctypes.c_int) for name in ("width", "height", "xoffset", "format")] + \
        [("data", ctypes.c_void_p)] + \
        [(name, ctypes.c_int) for name in ("byte_order", "bitmap_unit", "bitmap_bit_order", "bitmap_pad", "depth",
                                           "bytes_per_line", "bits_per_pixel")] + \
        [(name, ctypes.c_ulong) for name in ("red_mask", "green_mask", "blue_mask")]


def channel(pixel: int, mask: int) -> int:
    """The 0-255 value of the channel that `mask` selects in a true-colour pixel."""
    if not mask:
        return 0
    shift = (mask & -mask).bit_length() - 1
    top = mask >> shift
    return ((pixel & mask) >> shift) * 255 // top


def _declare(x11) -> None:
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for f in (x11.XDefaultScreen, x11.XCloseDisplay, x11.XDefaultRootWindow):
        f.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    for f in (x11.XDisplayWidth, x11.XDisplayHeight):
        f.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XQueryPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong, p(ctypes.c_ulong), p(ctypes.c_ulong),
                                  p(ctypes.c_int), p(ctypes.c_int), p(ctypes.c_int), p(ctypes.c_int),
                                  p(ctypes.c_uint)]
    x11.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, p(ctypes.c_ulong), p(ctypes.c_ulong),
                               p(p(ctypes.c_ulong)), p(ctypes.c_uint)]
    x11.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, p(ctypes.c_char_p)]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XGetWindowProperty.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long,
                                       ctypes.c_long, ctypes.c_int, ctypes.c_ulong, p(ctypes.c_ulong),
                                       p(ctypes.c_int), p(ctypes.c_ulong), p(ctypes.c_ulong),
                                       p(ctypes.c_void_p)]
    x11.XGetImage.restype = ctypes.c_void_p
    x11.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                              ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x11.XGetPixel.restype = ctypes.c_ulong
    x11.XGetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    x11.XDestroyImage.argtypes = [ctypes.c_void_p]
    for f in (x11.XUnmapWindow, x11.XMapWindow):
        f.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XSetErrorHandler.restype = ctypes.c_void_p
    x11.XSetErrorHandler.argtypes = [ERROR_HANDLER]


class XDisplay:
    """One connection to the X server at $DISPLAY, kept while the saver runs."""

    def __init__(self, x11, display):
        self.x11, self.display = x11, display
        self.root = x11.XDefaultRootWindow(display)

    @classmethod
    def open(cls) -> "XDisplay | None":
        """None when no X server answers at $DISPLAY; raises OSError without libX11."""
        name = ctypes.util.find_library("X11")
        if not name:
            raise OSError("libX11 not found")
        x11 = ctypes.CDLL(name)
        _declare(x11)
        display = x11.XOpenDisplay(None)
        if not display:
            return None
        x11.XSetErrorHandler(_ignore_error)  # for the whole process: Qt installs its own on its connection
        return cls(x11, display)

    def screen_size(self) -> tuple[int, int]:
        screen = self.x11.XDefaultScreen(self.display)
        return self.x11.XDisplayWidth(self.display, screen), self.x11.XDisplayHeight(self.display, screen)

    def pointer(self) -> tuple[int, int] | None:
        """The pointer's position on the screen, or None when it is on another screen."""
        root, child = ctypes.c_ulong(), ctypes.c_ulong()
        x, y, wx, wy, mask = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_uint()
        on_screen = self.x11.XQueryPointer(self.display, self.root, root, child, x, y, wx, wy, mask)
        return (x.value, y.value) if on_screen else None

    def find_window(self, title: str, pid: int | None = None) -> int | None:
        """This process's window named `title` (a window manager may have put it in a frame:
        the whole tree is searched), or None."""
        pid = os.getpid() if pid is None else pid
        stack = [self.root]
        while stack:
            window = stack.pop()
            if window != self.root and self._name(window) == title and self._pid(window) == pid:
                return window
            stack.extend(self._children(window))
        return None

    def _children(self, window: int) -> list[int]:
        root, parent, children, n = ctypes.c_ulong(), ctypes.c_ulong(), p(ctypes.c_ulong)(), ctypes.c_uint()
        if not self.x11.XQueryTree(self.display, window, root, parent, children, n):
            return []
        found = [children[i] for i in range(n.value)]
        if children:
            self.x11.XFree(children)
        return found

    def _name(self, window: int) -> str | None:
        name = ctypes.c_char_p()
        if not self.x11.XFetchName(self.display, window, name) or not name.value:
            return None
        text = name.value.decode("utf-8", "replace")
        self.x11.XFree(name)
        return text

    def _pid(self, window: int) -> int | None:
        atom = self.x11.XInternAtom(self.display, b"_NET_WM_PID", 0)
        kind, fmt, n, after, data = ctypes.c_ulong(), ctypes.c_int(), ctypes.c_ulong(), ctypes.c_ulong(), \
            ctypes.c_void_p()
        if self.x11.XGetWindowProperty(self.display, window, atom, 0, 1, 0, ANY_PROPERTY_TYPE, kind, fmt, n, after,
                                       data) != 0 or not data.value:
            return None
        pid = ctypes.cast(data, p(ctypes.c_long))[0] if n.value == 1 and fmt.value == 32 else None
        self.x11.XFree(data)
        return pid

    def colours(self, window: int, points: list[tuple[int, int]]) -> list[tuple[int, int, int] | None]:
        """The (b, g, r) the server has at each (x, y) of the window; None where it cannot be
        read (the window not mapped, the point outside it, a visual without colour masks)."""
        found = []
        for x, y in points:
            image = self.x11.XGetImage(self.display, window, x, y, 1, 1, ALL_PLANES, ZPIXMAP)
            if not image:
                found.append(None)
                continue
            head = XImage.from_address(image)
            pixel = self.x11.XGetPixel(image, 0, 0)
            masks = (head.blue_mask, head.green_mask, head.red_mask)
            found.append(tuple(channel(pixel, m) for m in masks) if all(masks) else None)
            self.x11.XDestroyImage(image)
        return found

    def remap(self, window: int) -> None:
        """Unmap and map the window again: its owner (Qt) is told it is exposed anew."""
        self.x11.XUnmapWindow(self.display, window)
        self.x11.XSync(self.display, 0)
        self.x11.XMapWindow(self.display, window)
        self.x11.XSync(self.display, 0)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.display)


class PaintWatch:
    """Does the window show what was drawn? Checked every `every` s while `watching` (the
    saver watches from its first picture until a while into the dream: the race is at the
    map); two readings in a row that match none of the last pictures drawn map the window
    again, at most `tries` times."""

    def __init__(self, x: XDisplay, title: str, size: tuple[int, int], every: float, tries: int):
        self.x, self.title, self.every, self.tries = x, title, every, tries
        self.points = sample_points(*size)
        self.window: int | None = None
        self.recent: list[np.ndarray] = []  # the last pictures' colours at the points: Qt may paint late
        self.watching, self._next, self._wrong = True, 0.0, 0

    def drawn(self, bgr: np.ndarray) -> None:
        """The picture just handed to OpenCV."""
        self.recent = [np.array([bgr[y, x] for x, y in self.points], int)] + self.recent[:2]

    def check(self) -> None:
        now = time.monotonic()
        if not self.watching or not self.recent or now < self._next:
            return
        self._next = now + self.every
        self.window = self.window or self.x.find_window(self.title)
        seen = self.x.colours(self.window, self.points) if self.window else [None]
        if None in seen:  # not (yet) mapped, or not all of it on the screen: no verdict
            return
        seen = np.array(seen, int)
        off = [np.abs(seen - drawn).max(axis=1) > TOLERANCE for drawn in self.recent]
        wrong = np.logical_and.reduce(off).mean() > 0.75  # most points like no recent picture
        self._wrong = self._wrong + 1 if wrong else 0
        if self._wrong < 2:
            return
        self._wrong = 0
        if self.tries == 0:
            log.warning("the window does not show what is drawn, even mapped again")
            self.watching = False
            return
        self.tries -= 1
        log.info("the window was mapped but not painted (a Qt race on busy machines): mapping it again")
        self.x.remap(self.window)


def sample_points(width: int, height: int, n: int = 3) -> list[tuple[int, int]]:
    """An n x n grid over the window, each point in the middle of its cell."""
    return [(round(width * (i + 0.5) / n), round(height * (j + 0.5) / n)) for j in range(n) for i in range(n)]
