"""A start photo meets the frame: cropped, padded or stretched, by exact arithmetic."""
import pytest
import torch

from dreamer.photo import fit, shape_note, size_for


def photo(w: int, h: int) -> torch.Tensor:
    """(3, h, w): a left-to-right ramp in red, top-to-bottom in green, so crops can be located."""
    xs, ys = torch.linspace(0, 1, w), torch.linspace(0, 1, h)
    return torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.full((h, w), 0.5)])


def test_size_follows_the_photos_shape_within_limits():
    assert size_for((512, 512), 480 * 270) == (360, 360)  # astronaut: square, as many pixels
    assert size_for((451, 300), 480 * 270) == (442, 294)  # chelsea: its 3:2, even sides
    assert size_for((100, 60), 480 * 270) == (100, 60)  # a small photo is not enlarged
    w, h = size_for((8000, 40), 480 * 270)
    assert h == 32 and w <= 4096  # a sliver: the sides stay within 32..4096 (crop takes the rest)


def test_crop_keeps_the_middle_unstretched():
    out = fit(photo(400, 400), (160, 90), "crop")
    assert out.shape == (3, 90, 160)
    assert abs(out[0, :, 0].mean() - 0.0) < 0.01 and abs(out[0, :, -1].mean() - 1.0) < 0.01  # the whole width
    assert abs(out[1, 0].mean() - 0.22) < 0.02 and abs(out[1, -1].mean() - 0.78) < 0.02  # the middle 9/16 of the height


def test_pad_keeps_all_of_it_and_fills_with_its_mean_colour():
    out = fit(photo(400, 400), (160, 90), "pad")
    assert out.shape == (3, 90, 160)
    bar = out[:, :, :30]  # (160 - 90) / 2 = 35 columns each side
    assert torch.allclose(bar, bar[:, :1, :1].expand_as(bar)) and abs(bar[0].mean() - 0.5) < 0.01
    picture = out[:, :, 35:125]
    assert abs(picture[1, 0].mean() - 0.0) < 0.02 and abs(picture[1, -1].mean() - 1.0) < 0.02  # all the height


def test_stretch_is_there_when_asked_for():
    out = fit(photo(400, 400), (160, 90), "stretch")
    assert out.shape == (3, 90, 160)
    assert abs(out[1, 0].mean() - 0.0) < 0.02 and abs(out[1, -1].mean() - 1.0) < 0.02
    with pytest.raises(ValueError):
        fit(photo(4, 4), (8, 8), "squash")


def test_the_note_says_what_happened():
    assert "its own shape" in shape_note((512, 512), (360, 360), "crop")
    assert (shape_note((512, 512), (480, 270), "crop")
            == "start image 512x512 cropped to 480x270 (--fit pad keeps all of it)")
    assert "padded to 480x270" in shape_note((512, 512), (480, 270), "pad")
