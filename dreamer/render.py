"""Offline rendering: dream N frames and write them as .mp4, .gif, .png or a folder of PNGs.

    render(dreamer, frames=100, output=Path("dream.mp4"), fps=25)
"""
from __future__ import annotations

import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov"}
SUFFIXES = VIDEO_SUFFIXES | {".gif", ".png"}


class OutputError(ValueError):
    pass


class PngFolder:
    def __init__(self, path: Path, fps: int):
        path.mkdir(parents=True, exist_ok=True)
        self.path, self.n = path, 0

    def write(self, rgb: np.ndarray) -> None:
        Image.fromarray(rgb).save(self.path / f"frame_{self.n:05d}.png")
        self.n += 1

    def close(self) -> None:
        pass


class LastPng:
    """A .png output keeps only the final frame: the finished dream."""

    def __init__(self, path: Path, fps: int):
        self.path, self.last = path, None

    def write(self, rgb: np.ndarray) -> None:
        self.last = rgb

    def close(self) -> None:
        if self.last is not None:
            Image.fromarray(self.last).save(self.path)


class Gif:
    def __init__(self, path: Path, fps: int):
        self.path, self.fps, self.frames = path, fps, []

    def write(self, rgb: np.ndarray) -> None:
        self.frames.append(Image.fromarray(rgb))

    def close(self) -> None:
        if self.frames:
            self.frames[0].save(self.path, save_all=True, append_images=self.frames[1:],
                                duration=round(1000 / self.fps), loop=0)


def is_video(output: Path) -> bool:
    return output.suffix.lower() in VIDEO_SUFFIXES


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """The largest even sides within `size`: what H.264 in yuv420p can hold (the command
    dreams at this size and says so, rather than lose a row or column unannounced)."""
    return size[0] // 2 * 2, size[1] // 2 * 2


class Video:
    """H.264 via PyAV (FFmpeg inside the wheel). yuv420p needs even sides: a frame with odd
    ones loses its last row/column (`even_size`). `fps` may be a Fraction (a clip's 2997/125).
    `audio_from`: a file whose sound goes along (AAC), cut where the video ends."""

    def __init__(self, path: Path, fps, audio_from: str | None = None):
        import av

        self.av, self.fps = av, Fraction(fps).limit_denominator(100_000)
        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "20", "preset": "veryfast"}
        self.audio = Soundtrack(audio_from, self.container) if audio_from else None
        self.opened, self.frames = False, 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        if not self.opened:
            self.stream.width, self.stream.height, self.opened = w, h, True
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        self.container.mux(self.stream.encode(frame))
        self.frames += 1
        if self.audio is not None:  # sound up to the picture, so the two are interleaved
            self.audio.until(float(self.frames / self.fps))

    def close(self) -> None:
        if self.opened:
            self.container.mux(self.stream.encode(None))
        if self.audio is not None:
            self.audio.finish(float(self.frames / self.fps))
        self.container.close()


class Soundtrack:
    """A file's first audio track, decoded and encoded to AAC into `container` bit by bit.
    Packets that do not decode (a clip's damaged frame) are skipped, not fatal."""

    def __init__(self, path: str, container):
        import av

        self.av = av
        self.source = av.open(path)
        if not self.source.streams.audio:
            self.source.close()
            self.source, self.stream = None, None
            return
        track = self.source.streams.audio[0]
        self.rate = track.rate or 48000
        self.stream = container.add_stream("aac", rate=self.rate, layout="stereo")
        self.container = container
        self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=self.rate, frame_size=1024)
        self.frames = self._resampled(track)
        self.samples = 0

    def _resampled(self, track):
        for packet in self.source.demux(track):
            try:
                decoded = packet.decode()
            except self.av.error.InvalidDataError:
                log.debug("skipped an audio packet that does not decode")
                continue
            for frame in decoded:
                yield from self.resampler.resample(frame)
        yield from self.resampler.resample(None)

    def until(self, seconds: float) -> None:
        """Encode sound up to `seconds` into the output."""
        if self.stream is None:
            return
        while self.samples < seconds * self.rate:
            frame = next(self.frames, None)
            if frame is None:  # the sound is shorter than the picture: it ends here
                self.container.mux(self.stream.encode(None))
                self.stream = None
                return
            frame.pts, frame.time_base = self.samples, Fraction(1, self.rate)
            self.samples += frame.samples
            self.container.mux(self.stream.encode(frame))

    def finish(self, seconds: float) -> None:
        if self.stream is not None:
            self.until(seconds)
            self.container.mux(self.stream.encode(None))
        if self.source is not None:
            self.source.close()


def check_output(output: Path, force: bool = False) -> None:
    """Refuse a path we cannot write before minutes of dreaming, not after, naming the path
    and the real cause; keep an existing output unless `force`. Writing is tried for real
    (a file created and removed): permission bits say yes to root, and on /proc."""
    if output.suffix and output.suffix.lower() not in SUFFIXES:
        raise OutputError(f"cannot write {output}: use .mp4, .gif, .png, or a folder name for PNG frames")
    folder = output.parent
    if not folder.is_dir():
        above = folder
        while not above.exists():  # the nearest part of the path that is there ("/" and "." are)
            above = above.parent
        if not above.is_dir():
            raise OutputError(f"cannot write {output}: {above} is a file, not a folder")
        raise OutputError(f"cannot write {output}: folder {folder} does not exist")
    if output.exists() and not (output.is_file() or output.is_dir()):
        raise OutputError(f"cannot write {output}: it is neither a file nor a folder")
    if output.exists() and not force and (output.is_file() or any(output.iterdir())):
        raise OutputError(f"{output} exists; use --force to replace it")
    try:
        if output.is_file():
            open(output, "ab").close()  # writable, without truncating what is there
        else:  # a new file, or files in a folder of frames
            fd, probe = tempfile.mkstemp(dir=output if output.is_dir() else folder, prefix=".dreamstream-")
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        where = output if output.exists() else folder
        raise OutputError(f"cannot write {output}: {where} refuses it ({e.strerror})") from None


def open_writer(output: Path, fps, audio_from: str | None = None):
    """Pick the writer from the path: a known suffix, else a folder of PNGs. `audio_from`: a
    file whose sound a video output keeps."""
    check_output(output, force=True)  # replacing or not was the caller's decision
    suffix = output.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return Video(output, fps, audio_from)
    return {".gif": Gif, ".png": LastPng}.get(suffix, PngFolder)(output, fps)


def render(dreamer, frames: int, output: Path, fps: int = 25, progress: bool = True) -> Path:
    """Dream exactly `frames` frames into `output`, each 1/fps s of the stream's motion (so a
    video moves as the live stream does) and `steps` steps (an offline frame has time for them)."""
    writer = open_writer(output, fps)
    try:
        for _ in tqdm(range(frames), desc=f"dreaming {output.name}", unit="frame", disable=not progress):
            writer.write(dreamer.frame(1.0 / fps))
    finally:
        writer.close()
    return output
