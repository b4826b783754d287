"""Live input: a video file, a camera, a screen or another stream, read into a latest-frame bus.

    --source clip.mp4 | camera[:N] | screen[:DISPLAY] | rtmp://... rtsp://... srt://... https://....m3u8 | whip

Files and network streams are read with PyAV's FFmpeg; a screen with its x11grab in a child
process (`stream.inputs.screen_grab` says why); a camera with OpenCV's VideoCapture (PyAV's FFmpeg
has no v4l2, OpenCV's wheel has); a WHIP publisher by `serve` itself (stream/inputs/whip.py).
`open_input` opens one
and reads its first frame, so a missing file, an absent camera, an unreachable URL or an
unreadable format is one `SourceError` line before anything else starts. `SourceReader` is
the supervised worker that then reads it: each frame cropped to the output's aspect (as
`render --start` crops a photo), scaled to the output size and published on the source bus,
newest only, so a slow dream never backs the input up. A file plays at its own frame rate and
loops (or ends, for a render); a network source that drops is reopened with the Worker's
backoff while the dream goes on with the last frame it had.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from dreamer.photo import cover

from ..core.framebus import FrameBus
from ..core.sanitize import mask_url
from ..core.worker import RateMeter, Worker

log = logging.getLogger(__name__)

NETWORK = ("rtmp", "rtmps", "rtsp", "rtsps", "srt", "udp", "tcp", "http", "https")
OPEN_TIMEOUT_S = 10.0  # a network source that says nothing for this long is unreachable (or dropped)


class SourceError(Exception):
    """A source that cannot be read: one line for the user."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # file | camera | screen | url | whip (a publisher at POST /whip: stream/inputs/whip.py)
    target: str  # the path, the camera index, the X display, the URL

    @property
    def shown(self) -> str:
        """How the source is named to viewers (/api/state): a file by its name only, a URL's key masked."""
        if self.kind == "url":
            return mask_url(self.target)
        if self.kind == "file":
            return Path(self.target).name
        if self.kind == "whip":
            return "whip"
        return f"{self.kind}:{self.target}"

    @property
    def said(self) -> str:
        """How the source is named to the user (errors, the banner): as given, a URL's key masked."""
        return self.target if self.kind == "file" else self.shown


def parse_source(text: str) -> SourceSpec:
    """FILE | camera[:N] | screen[:DISPLAY] | URL | whip -> SourceSpec (no I/O; SourceError if malformed)."""
    text = text.strip()
    if text == "whip":  # a file of that name: ./whip
        return SourceSpec("whip", "whip")
    head, _, rest = text.partition(":")
    if head == "camera":
        if rest and not rest.isdigit():
            raise SourceError(f"--source {text}: a camera is camera or camera:N, with N its number (0, 1, ...)")
        return SourceSpec("camera", rest or "0")
    if head == "screen":
        display = rest or os.environ.get("DISPLAY", "")
        if not display:
            raise SourceError("--source screen: no X display (set DISPLAY, or name one: screen::0)")
        return SourceSpec("screen", display if display.startswith(":") or "." in display else f":{display}")
    if "://" in text:
        scheme = urlsplit(text).scheme.lower()
        if scheme not in NETWORK:
            raise SourceError(f"--source {mask_url(text)}: cannot read {scheme}:// (use {', '.join(NETWORK)})")
        return SourceSpec("url", text)
    if not text:
        raise SourceError("--source needs a file, camera[:N], screen[:DISPLAY] or a URL")
    return SourceSpec("file", text)



class Input:
    """An open source: `frames()` yields (rgb, seconds into the source), `fps` its rate."""

    fps: float = 30.0
    size: tuple[int, int] = (0, 0)
    live: bool = True  # frames come at their own pace (camera, screen, stream); a file is paced by us
    frame_count: int = 0  # a file's frames, when its header says (0: unknown or endless)

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class AvInput(Input):
    """A file or a network stream through PyAV."""

    def __init__(self, spec: SourceSpec):
        import av

        self.av, self.spec = av, spec
        try:
            self.container = av.open(spec.target, timeout=(OPEN_TIMEOUT_S, OPEN_TIMEOUT_S))
        except FileNotFoundError:
            raise SourceError(f"--source {spec.said}: no such file") from None
        except (av.error.FFmpegError, OSError) as e:
            raise SourceError(f"--source {spec.said}: cannot open it ({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"--source {spec.said}: it has no video")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = rate if rate else 30.0  # a Fraction where the file says (2997/125), kept exact for a render
        self.frame_count = self.stream.frames or 0
        self.live = spec.kind != "file"
        self._decoded = self._decode()
        try:
            self._first = next(self._decoded)  # an unreadable format fails here, at start
        except StopIteration:
            self.close()
            raise SourceError(f"--source {spec.said}: no frame could be read from it") from None
        except (av.error.FFmpegError, OSError) as e:
            self.close()
            raise SourceError(f"--source {spec.said}: cannot read it ({_reason(e)})") from None
        self.size = (self._first[0].shape[1], self._first[0].shape[0])

    def _decode(self) -> Iterator[tuple[np.ndarray, float]]:
        base = None
        for frame in self.container.decode(self.stream):
            t = float(frame.time) if frame.time is not None else None
            if t is None:
                t = 0.0 if base is None else base + 1.0 / self.fps
            base = t if base is None else max(base, t)
            yield frame.to_ndarray(format="rgb24"), t

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        first, self._first = self._first, None
        if first is not None:
            yield first
        yield from self._decoded

    def close(self) -> None:
        try:
            self.container.close()
        except (self.av.error.FFmpegError, OSError):
            pass


class ScreenInput(Input):
    """An X screen, grabbed 30 times a second by `stream.inputs.screen_grab` in a child process."""

    fps = 30.0

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.inputs.screen_grab", spec.target, str(int(self.fps))],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        header = self.proc.stdout.readline().split()
        if len(header) != 2:
            self.proc.wait(OPEN_TIMEOUT_S)
            why = self.proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
            raise SourceError(f"--source screen:{spec.target}: {why[-1] if why else 'no picture from it'}")
        self.size = (int(header[0]), int(header[1]))

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        w, h = self.size
        start = time.monotonic()
        while True:
            data = self.proc.stdout.read(w * h * 3)
            if len(data) < w * h * 3:
                raise OSError("the screen grab ended")
            yield np.frombuffer(data, np.uint8).reshape(h, w, 3), time.monotonic() - start

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


class CameraInput(Input):
    """A camera through OpenCV's VideoCapture (V4L2 on Linux)."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        quiet = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its own warnings: we say it in one line
        try:
            self.cap = cv2.VideoCapture(int(spec.target), cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY)
            ok, bgr = self.cap.read() if self.cap.isOpened() else (False, None)
        finally:
            cv2.utils.logging.setLogLevel(quiet)
        if not ok:
            self.cap.release()
            raise SourceError(f"--source camera:{spec.target}: no camera there (is it plugged in, and may you "
                              f"read /dev/video{spec.target}?)")
        self._first = bgr
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.size = (bgr.shape[1], bgr.shape[0])

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        start = time.monotonic()
        bgr, self._first = self._first, None
        while True:
            if bgr is None:
                ok, bgr = self.cap.read()
                if not ok:
                    raise OSError("the camera stopped sending frames")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic() - start
            bgr = None

    def close(self) -> None:
        self.cap.release()


def _reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(": '", 1)[0].strip() or type(e).__name__


def open_input(spec: SourceSpec) -> Input:
    """Open the source and read its first frame; SourceError (one line) when that fails."""
    if spec.kind == "whip":
        raise SourceError("--source whip: a WHIP publisher is taken by serve (at POST /whip); "
                          "give render and the screensaver a file, camera, screen or URL")
    return {"camera": CameraInput, "screen": ScreenInput}.get(spec.kind, AvInput)(spec)


class SourceReader(Worker):
    """Reads an input into `out` at `size`, newest frame only. `paced`: a file plays at its
    own rate (live use); a render reads as fast as it dreams. `loop`: a file starts over."""

    name = "source"

    def __init__(self, spec: SourceSpec, out: FrameBus, size: tuple[int, int], first: Input | None = None,
                 loop: bool = True):
        super().__init__()
        self.spec, self.out, self.size, self.loop = spec, out, size, loop
        self._input = first  # opened at start, so that its errors came before anything else
        self.meter = RateMeter(window=20)
        self.fps = float(first.fps) if first is not None else 30.0
        self.input_size = first.size if first is not None else (0, 0)
        self.frames = 0
        self.ended = False  # a file that was not to loop has played
        self.error = ""  # why the last session ended, shown in /api/state

    def job(self) -> None:
        """One session with the input, until it ends or drops; the Worker reopens it after its
        backoff. Whatever went wrong is one line in the log and in the health, the URL's key
        masked (FFmpeg's errors carry the whole URL)."""
        import av

        try:
            self._session()
        except SourceError as e:
            self.error = str(e)
            log.warning("%s", e)
        except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as e:
            self.error = self._scrub(f"{type(e).__name__}: {e}")
            log.warning("source %s: %s", self.spec.shown, self.error)
        except Exception:  # a bug: its traceback, but never the key
            self.error = "failed"
            log.error("source %s failed:\n%s", self.spec.shown, self._scrub(traceback.format_exc()))

    def _scrub(self, text: str) -> str:
        return text.replace(self.spec.target, self.spec.shown) if self.spec.kind == "url" else text

    def _session(self) -> None:
        source, self._input = self._input or open_input(self.spec), None
        if self.restarts:
            log.info("source %s: reading again", self.spec.shown)
        self.fps, self.input_size, self.error = float(source.fps), source.size, ""
        try:
            while not self.stopping:
                start = time.monotonic()
                for rgb, t in source.frames():
                    if self.stopping:
                        return
                    if not source.live:  # a file: each frame at its time, as a player would show it
                        self._stop.wait(max(0.0, start + t - time.monotonic()))
                    self.out.publish(cover(rgb, self.size))
                    self.frames += 1
                    self.meter.tick()
                    self.backoff.reset()
                if source.live or not self.loop:
                    break
                source.close()
                source = open_input(self.spec)  # a file starts over
            if not source.live and not self.loop:
                self.ended = True
                self.stop_soon()
            elif source.live:
                raise OSError("the stream ended")
        finally:
            source.close()

    def health(self, now: float | None = None) -> dict:
        now = time.monotonic() if now is None else now
        frame = self.out.latest()
        age = None if frame is None else round(now - frame.time, 2)
        return {"input": self.spec.shown, "kind": self.spec.kind, "state": "ended" if self.ended else self.state,
                "fps": round(self.meter.rate, 2), "source_fps": round(float(self.fps), 3),
                "size": list(self.input_size), "frame_age_s": age, "error": self.error or None}
