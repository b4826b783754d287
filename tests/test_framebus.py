import asyncio
import threading

import cv2
import numpy as np
import pytest

from dreamer.loop import MAX_DT_S, DreamSettings
from stream.core.framebus import BusClosed, Frame, FrameBus
from stream.spine.presenter import Motion, Presenter, upscale, zoom_rgb


def rgb(value: int, h=24, w=32) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_latest_wins_and_jpeg_is_encoded_once_per_frame():
    bus = FrameBus()
    for v in (10, 20, 30):
        bus.publish(rgb(v))
    frame = bus.latest()
    assert frame.seq == 3 and frame.rgb[0, 0, 0] == 30
    jpegs = {id(bus.jpeg(frame)) for _ in range(50)}  # fifty viewers, one encoding
    assert len(jpegs) == 1 and bus.jpeg_encodes == 3
    img = cv2.imdecode(np.frombuffer(bus.jpeg(frame), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (24, 32, 3) and abs(int(img[0, 0, 0]) - 30) <= 2


def test_async_reader_skips_to_the_newest_frame():
    bus = FrameBus()

    async def run():
        bus.publish(rgb(1))
        first = await bus.next(0)
        for v in (2, 3, 4):  # a slow reader was busy while three frames came
            bus.publish(rgb(v))
        newest = await bus.next(first.seq)
        assert newest.seq == 4 and newest.rgb[0, 0, 0] == 4
        # a publish from another thread wakes a waiting reader
        threading.Timer(0.1, lambda: bus.publish(rgb(5))).start()
        woke = await asyncio.wait_for(bus.next(newest.seq), 5)
        assert woke.seq == 5
        threading.Timer(0.1, bus.close).start()
        with pytest.raises(BusClosed):
            await asyncio.wait_for(bus.next(woke.seq), 5)

    asyncio.run(run())
    assert bus.publish(rgb(6)) == 0  # closed: ignored


def test_thread_reader_waits_and_times_out():
    bus = FrameBus(encode=False)
    assert bus.wait(0, timeout=0.05) is None
    bus.publish(rgb(1))
    assert bus.wait(0, timeout=0.05).seq == 1 and bus.jpeg_encodes == 0


def test_zoom_rgb_identity_and_magnification():
    img = np.zeros((21, 21, 3), np.uint8)
    img[10, 10] = 255
    assert np.array_equal(zoom_rgb(img, 1.0), img)
    assert (zoom_rgb(img, 3.0) > 0).sum() > (img > 0).sum()


def test_zoom_rgb_is_the_dreams_own_affine():
    """The presenter's OpenCV zoom must move the picture exactly as the dream's next frame will."""
    import torch

    from dreamer.loop import to_uint8
    from dreamer.regularize import affine

    rgb = cv2.GaussianBlur((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8), (0, 0), 2)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    for scale, angle, shift in [(1.03, 0.0, (0.0, 0.0)), (1.1, 4.0, (0.02, -0.01)), (0.95, -3.0, (0.0, 0.03))]:
        ours = zoom_rgb(rgb, scale, angle, shift).astype(int)
        dream = to_uint8(affine(x, scale, angle, shift)).astype(int)
        inner = (slice(6, -6), slice(6, -6))  # borders differ only in how reflection is sampled
        assert np.abs(ours[inner] - dream[inner]).max() <= 2, (scale, angle, shift)


def key(seq: int, value, t: float, moment: float | None = None) -> Frame:
    return Frame(seq, value if isinstance(value, np.ndarray) else rgb(value, 48, 64), t, t if moment is None else moment)


ZOOM = DreamSettings(zoom_per_s=0.05)
RAMP = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))


def test_motion_moves_a_keyframe_on_from_its_moment_and_fades_to_new_ones():
    m = Motion(ZOOM, fade_s=0.25)
    first = key(1, RAMP, 10.0)
    assert np.array_equal(m.frame(first, 10.0), RAMP)  # at the moment it stands for: as dreamed
    assert np.array_equal(m.frame(first, 10.5), zoom_rgb(RAMP, 1.05 ** 0.5))  # half a second on: 1.05 ** 0.5
    assert np.array_equal(m.frame(first, 30.0), zoom_rgb(RAMP, 1.05 ** MAX_DT_S))  # a late frame: at most MAX_DT_S on
    shown = m.frame(first, 31.0)
    grey = key(2, 200, 31.0)
    m.frame(grey, 31.04)
    assert np.array_equal(shown, m.faded_from)  # the fade starts from what was shown, with the last shown frame
    mid = m.frame(grey, 31.125)  # halfway through the 0.25 s fade
    assert abs(float(mid.mean()) - (0.5 * float(shown.mean()) + 0.5 * 200)) < 2
    assert np.array_equal(m.frame(grey, 31.25), zoom_rgb(grey.rgb, 1.05 ** 0.25))  # faded in
    assert m.interval == 0.8 * 0.25 + 0.2 * 21.0  # the gap between dreamed frames' moments


def test_the_fade_never_outlasts_the_gap_between_dreamed_frames():
    m = Motion(ZOOM, fade_s=0.25)
    for i in range(40):  # a dreamed frame for every shown one (a GPU): 30 a second
        m.frame(key(i + 1, 100 + i, i / 30), i / 30)
    assert abs(m.fade_time() - 1 / 30) < 1e-3
    shown = m.frame(key(41, 255, 40 / 30), 40 / 30 + 1 / 30)
    assert shown.min() == 255  # one shown frame later the new one is all there: no smear


@pytest.mark.parametrize("dream_fps", [0.7, 2.0, 5.0, 25.0])
def test_zoom_per_second_is_the_setting_whatever_the_dream_rate(dream_fps):
    """A stand-in dream at any rate, its frames early or late: the shown picture's zoom since
    the start is (1 + zoom_per_s) ** seconds, exactly, at every shown frame (25 a second)."""
    m = Motion(ZOOM)
    rng = np.random.default_rng(int(dream_fps * 10))
    world = 1.0  # the zoom the newest dreamed frame carries since the start (the dream thread's doing)
    latest, seq, moment = None, 0, 0.0
    for n in range(250):  # 10 s shown
        now = n / 25
        if moment <= now:  # the dream publishes a frame that stands for `moment`, a bit late or not
            seq += 1
            world = 1.05 ** moment
            latest = key(seq, RAMP, now, moment)
            moment += (1 / dream_fps) * rng.uniform(0.7, 1.3)
        m.frame(latest, now)
        scale, _, _ = m.pose(latest, now)
        assert abs(world * scale - 1.05 ** now) < 1e-9, (dream_fps, now)


def test_presenter_publishes_shown_frames_from_dreamed_ones_and_stops():
    keys, out = FrameBus(encode=False), FrameBus(encode=False)
    p = Presenter(keys, out, fps=25, motion=ZOOM)
    p.start()
    try:
        assert out.wait(0, timeout=0.2) is None  # nothing to show before the first dreamed frame
        keys.publish(rgb(100, 48, 64))
        first = out.wait(0, timeout=5)
        assert first is not None and first.rgb.shape == (48, 64, 3)
        assert out.wait(first.seq, timeout=5).seq > first.seq  # it goes on without new dreamed frames
    finally:
        p.stop()
    assert p.state == "stopped"


def test_motion_upscales_to_the_output_size():
    out = upscale(RAMP, (128, 96))
    assert out.shape == (96, 128, 3)
    want = cv2.resize(RAMP, (128, 96), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(out, want)
    m = Motion(ZOOM, size=(128, 96))
    assert m.frame(key(1, RAMP, 0.0), 0.0).shape == (96, 128, 3)
    assert m.frame(key(2, 200, 0.5), 0.6).shape == (96, 128, 3)  # fades at the output size too
    assert m.small.shape == (48, 64, 3)  # ... having warped and faded at the dream's


def test_mjpeg_part_is_built_once_per_frame_and_never_mixes_buses():
    from stream.outputs.mjpeg import Parts
    parts, a, b = Parts(), FrameBus(), FrameBus()
    a.publish(np.zeros((8, 8, 3), np.uint8))
    b.publish(np.full((8, 8, 3), 255, np.uint8))  # also seq 1
    fa, fb = a.latest(), b.latest()
    assert fa.seq == fb.seq == 1
    first = parts.of(a, fa)
    assert parts.of(a, fa) is first and first.endswith(a.jpeg(fa) + b"\r\n")
    assert parts.of(b, fb).endswith(b.jpeg(fb) + b"\r\n") and a.jpeg(fa) != b.jpeg(fb)
