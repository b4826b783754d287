"""Clips: written from an encoder's packets (remuxed) or from shown JPEGs (encoded), capped, and
stopped with one log line when the folder cannot be written. Real PyAV encodes, real files."""
import logging
import threading
import time
from pathlib import Path

import av
import numpy as np

from stream.config import ClipSettings
from stream.core.framebus import FrameBus
from stream.outputs.clips import Clip, ClipFolder, Clips, file_name


def picture(n: int, w: int, h: int) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, (4 * n) % w:(4 * n) % w + 16] = (250, 120, 20)  # a bar that moves: frames differ
    return rgb


def written(clips: Clips):
    """Start the writer; returns (event, list) filled by on_written."""
    done, got = threading.Event(), []
    clips.on_written = lambda clip, ended_id: (got.append((clip, ended_id)), done.set())
    clips.start()
    return done, got


def read(path: Path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return s.codec_context.name, frames, float(s.duration * s.time_base)


def test_while_streaming_a_clip_is_the_encoders_packets_from_a_keyframe_remuxed(tmp_path):
    clips = Clips(ClipSettings(str(tmp_path / "clips"), max_mb=100, seconds=2.0), fps=30, nice=0, streaming=True)
    assert clips.open()
    done, got = written(clips)
    # what RtmpEncoder does, with the hook before muxing: 30 fps, a keyframe every 1 s here
    flv = av.open(str(tmp_path / "sent.flv"), "w", format="flv")
    video = flv.add_stream("libx264", rate=30)
    video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
    video.options = {"preset": "veryfast", "tune": "zerolatency", "x264-params": "keyint=30:min-keyint=30:scenecut=0"}
    for n in range(120):
        frame = av.VideoFrame.from_ndarray(picture(n, 320, 180), format="rgb24")
        frame.pts = n
        packets = video.encode(frame)
        for p in packets:
            clips.packet(video, p)
        flv.mux(packets)
    flv.close()
    assert clips.cut("pizza + volcano", "ann", "r7")
    assert done.wait(30)
    clips.stop()
    clip, ended_id = got[0]
    assert ended_id == "r7" and clip.label == "pizza + volcano" and clip.user == "ann"
    assert clip.name.endswith("-pizza-volcano.mp4") and 2.0 <= clip.seconds < 3.05  # from the keyframe before
    codec, frames, duration = read(tmp_path / "clips" / clip.name)
    assert codec == "h264" and (frames[0].width, frames[0].height) == (320, 180)
    assert frames[0].key_frame and len(frames) >= 60 and abs(duration - len(frames) / 30) < 0.1
    assert clips.listing()[0]["url"] == f"/clips/{clip.name}"


def test_without_streaming_a_clip_is_the_shown_jpegs_encoded_as_they_were_timed(tmp_path):
    clips = Clips(ClipSettings(str(tmp_path), max_mb=100, seconds=1.0), fps=25, nice=0)
    assert clips.open()
    bus = FrameBus(jpeg_quality=85)
    clips.bus = bus
    done, got = written(clips)
    for n in range(40):  # 1.6 s at 25 fps; the clip keeps the last second
        bus.publish(picture(n, 160, 96))
        time.sleep(0.04)
    assert clips.cut("volcano", None, "p3")
    assert done.wait(30)
    clips.stop()
    clip = got[0][0]
    codec, frames, duration = read(tmp_path / clip.name)
    assert codec == "h264" and (frames[0].width, frames[0].height) == (160, 96)
    assert 0.7 < duration < 1.3 and 0.7 < clip.seconds <= 1.05  # the shown times, not a frame count


def test_the_cap_removes_the_oldest_first_and_counts_an_earlier_runs_clips(tmp_path):
    old = [tmp_path / f"2026010{i}-120000-daisy.mp4" for i in range(1, 4)]
    for path in old:
        path.write_bytes(b"x" * 400)
    (tmp_path / "holiday.mp4").write_bytes(b"y" * 5000)  # not ours: never counted, never removed
    folder = ClipFolder(tmp_path, max_bytes=1000)
    folder.open()
    assert [c.name for c in folder.clips] == [p.name for p in old[1:]] and not old[0].exists()
    (tmp_path / "20260201-120000-pizza.mp4").write_bytes(b"z" * 500)
    folder.add(Clip("20260201-120000-pizza.mp4", "pizza", None, 2.0, 500))
    assert [c.name for c in folder.clips] == [old[2].name, "20260201-120000-pizza.mp4"]
    assert not old[1].exists() and (tmp_path / "holiday.mp4").exists()
    assert folder.path("holiday.mp4") is None and folder.path("../20260201-120000-pizza.mp4") is None
    assert folder.path("20260201-120000-pizza.mp4") == tmp_path / "20260201-120000-pizza.mp4"
    taken = {"20260201-120000-pizza.mp4"}
    assert file_name("Pizza!", taken, time.mktime((2026, 2, 1, 12, 0, 0, 0, 0, -1))) == "20260201-120000-pizza-2.mp4"


def test_an_unwritable_folder_stops_clips_with_one_line_and_nothing_else(tmp_path, caplog):
    (tmp_path / "a-file").write_text("")
    clips = Clips(ClipSettings(str(tmp_path / "a-file" / "clips")), fps=25, nice=0)
    with caplog.at_level(logging.WARNING, logger="stream.outputs.clips"):
        assert not clips.open()
        assert not clips.cut("volcano", None, "p1")
    assert [r.getMessage() for r in caplog.records] == [
        f"clips: cannot write to {tmp_path / 'a-file' / 'clips'} (Not a directory); no clips for the rest of this run"]


def test_a_folder_that_goes_away_mid_run_stops_clips_once(tmp_path, caplog):
    folder = tmp_path / "clips"
    clips = Clips(ClipSettings(str(folder), seconds=1.0), fps=25, nice=0)
    assert clips.open()
    bus = FrameBus()
    clips.bus = bus
    clips.start()
    for n in range(10):
        bus.publish(picture(n, 64, 48))
        time.sleep(0.04)
    folder.rmdir()
    folder.write_text("the disk was swapped")  # the folder is now a file: every write fails
    with caplog.at_level(logging.WARNING, logger="stream.outputs.clips"):
        assert clips.cut("volcano", None, "p1")
        for _ in range(100):
            if not clips.enabled:
                break
            time.sleep(0.05)
        assert not clips.cut("pizza", None, "p2")  # off for the rest of the run
    clips.stop()
    assert not clips.enabled and clips.alive is False
    assert len(caplog.records) == 1 and "no clips for the rest of this run" in caplog.records[0].getMessage()
