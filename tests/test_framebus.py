import asyncio
import threading
import time

import cv2
import numpy as np
import pytest

from stream.framebus import BusClosed, FrameBus
from stream.presenter import Presenter, zoom_rgb


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


def test_presenter_keeps_moving_between_keyframes_and_fades_to_new_ones():
    keys, out = FrameBus(encode=False), FrameBus(encode=False)
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    keys.publish(ramp)
    p = Presenter(keys, out, fps=25, zoom=0.05)
    p.start()
    try:
        f1 = out.wait(0, timeout=5)
        time.sleep(0.4)
        f2 = out.latest()
        assert f2.seq >= f1.seq + 5  # ~25 fps without a single new keyframe
        assert not np.array_equal(f1.rgb, f2.rgb)  # and the picture moved (zoom)
        keys.publish(rgb(200, 48, 64))
        time.sleep(0.5)
        assert abs(int(out.latest().rgb.mean()) - 200) <= 2  # faded over to the new keyframe
    finally:
        p.stop()
    assert 10 < p.rate < 40
