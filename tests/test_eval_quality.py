"""The quality eval's own machinery at tiny sizes: views, judging, the live run, sheets."""
import argparse
import json

import numpy as np
import pytest
import torch

import eval_quality as ev
from dreamer.classes import parse
from dreamer.loop import DreamSettings


def test_views_magnify_and_half_resolution_keeps_only_coarse_detail():
    x = torch.rand(1, 3, 32, 48)
    assert ev.magnify(x, 1.0) is x
    assert ev.still_view(x, "1.25").shape[-2:] == (40, 60)
    assert ev.still_view(x, "1.5").shape[-2:] == (48, 72)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    checker = ((xx + yy) % 2).expand(1, 3, -1, -1).contiguous()
    half = ev.still_view(checker, "half")
    assert half.shape == checker.shape and float((half - 0.5).abs().max()) < 0.05  # pixel grain is gone
    ramp = (xx / 47).expand(1, 3, -1, -1).contiguous()
    assert float((ev.half_and_back(ramp) - ramp).abs().mean()) < 0.02  # shapes survive
    sq = ev.centre_square(torch.arange(2 * 6.0).view(1, 1, 2, 6))
    assert sq.shape[-2:] == (2, 2) and sq[0, 0, 0].tolist() == [2.0, 3.0]


def test_sweep_magnifies_the_picture_or_its_centre_square():
    x = torch.rand(1, 3, 32, 48)
    sweep = ev.sweep_views([1.0, 2.5])
    assert list(sweep) == ["1x", "2.5x"] and sweep["1x"](x) is x and sweep["2.5x"](x).shape[-2:] == (80, 120)
    assert ev.sweep_views([2.0], square=True)["2x"](x).shape[-2:] == (64, 64)
    assert ev.magnification("2.5") == 2.5
    for bad in ("0", "-1", "nan", "inf", "9", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            ev.magnification(bad)


def test_judging_reports_every_view_and_the_worst(lite0):
    images = [torch.rand(1, 3, 40, 40) for _ in range(2)]
    views = {v: (lambda im, v=v: ev.still_view(im, v)) for v in ev.STILL_VIEWS}
    textiles = ev.textile_indices()
    out = ev.judge_views(lite0, images, [980, 107], views, textiles)
    assert set(out["views"]) == set(ev.STILL_VIEWS)
    for k in ("top1", "top5", "prob"):
        assert out["worst"][k] == min(v[k] for v in out["views"].values())
    assert out["worst"]["textile_top1"] == max(v["textile_top1"] for v in out["views"].values())
    json.dumps(out)


def test_textile_share_counts_textile_answers():
    wool = parse("wool").classes[0].index
    verdicts = [ev.Verdict(3, 0.1, wool), ev.Verdict(0, 0.9, 980)]
    assert ev.summarize(verdicts, ev.textile_indices()) == {"top1": 0.5, "top5": 1.0, "prob": 0.5,
                                                            "textile_top1": 0.5}


def test_live_run_dreams_one_hold_per_class_in_one_stream(lite0, tmp_path):
    targets = [parse("volcano"), parse("daisy")]
    settings = DreamSettings(size=(48, 32), steps=1)
    last = ev.dream_live(lite0, settings, targets, seed=0, frames_per_hold=2, dt=0.25, steps=1)
    assert len(last) == 2 and last[0].shape == (1, 3, 32, 48) and not torch.equal(last[0], last[1])
    views = ev.live_views(32)
    assert views["3x"](last[0]).shape[-2:] == (96, 96)
    shown = [views["player"](im) for im in last]
    assert shown[0].shape[-2:] == (ev.PLAYER_PX, ev.PLAYER_PX)
    assert ev.live_views(32, 720)["frame"](last[0]).shape[-2:] == (720, 1080)  # the whole frame, 720 high
    fresh = ev.dream_live(lite0, settings, targets, seed=0, frames_per_hold=2, dt=0.25, steps=1, from_noise=True)
    assert torch.equal(fresh[0], last[0]) and not torch.equal(fresh[1], last[1])  # the second from noise too
    shown = [ev.magnify(ev.centre_square(im), 3.0) for im in last]
    ev.contact_sheet(shown, ["volcano -> x", "daisy -> y"], tmp_path / "live.jpg", cols=4)
    from PIL import Image
    sheet = np.asarray(Image.open(tmp_path / "live.jpg"))
    assert sheet.shape == (96 + 28, 2 * 96, 3)


def test_calibration_runs_real_photos_through_the_same_views(lite0):
    views = ev.live_views(32)
    out = ev.photo_calibration(lite0, 32, views, ev.textile_indices())
    assert out["photos"] == len(ev.PHOTOS)
    assert set(out["sharp"]) == set(out["soft"]) == {"1.0", "1.5", "half", "player", "frame", "3x"}


def test_colourfulness_of_grey_is_zero_and_of_colour_is_not():
    grey = np.full((8, 8, 3), 128, np.uint8)
    red_green = np.zeros((8, 8, 3), np.uint8)
    red_green[:4, :, 0] = 255
    red_green[4:, :, 1] = 255
    assert ev.colourfulness(grey) == 0 and ev.colourfulness(red_green) > 100
    assert ev.contrast(grey) == 0
