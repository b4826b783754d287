"""The blind-naming set's machinery: pictures at player size with no caption in their names,
a key kept apart, and a person's words scored against it."""
import random

import cv2
import numpy as np

import blind_set as bs


def test_guesses_name_a_class_as_people_shorten_it_not_a_neighbour_or_a_kind():
    for guess, wanted in [("penguin", "king penguin"), ("Pandas", "giant panda"), ("an apple", "Granny Smith"),
                          ("A teapot.", "teapot"), ("ladybird", "ladybug"), ("car", "sports car"),
                          ("golf balls", "golf ball"), ("an apple cut in half", "Granny Smith"),
                          ("a lion cub", "lion"), ("a bunch of bananas", "banana"),
                          ("golf balls on grass", "golf ball")]:
        assert bs.names_class(guess, wanted), (guess, wanted)
    for guess, wanted in [("race car", "sports car"), ("broccoli", "cauliflower"), ("bird", "ostrich"),
                          ("cat", "lion"), ("hedgehog", "giant panda"), ("", "lion"), ("a", "lion"),
                          ("knitted wool", "teapot"), ("a race car toy", "sports car"), ("hot dog", "dog"),
                          ("a bowl of soup", "ladybug")]:
        assert not bs.names_class(guess, wanted), (guess, wanted)


def test_score_counts_first_guesses_and_within_three_and_unanswered_as_missed():
    key = {"01.jpg": {"class": "lion"}, "02.jpg": {"class": "teapot"}, "03.jpg": {"class": "banana"},
           "04.jpg": {"class": "pretzel"}}
    names = {"01.jpg": ["lion", "tiger"], "02.jpg": ["vase", "jug", "teapot", "a teapot"],
             "03.jpg": ["moon", "lemon", "squash", "banana"]}  # a fourth guess is not read
    result = bs.score(key, names)
    assert (result["pictures"], result["named_first"], result["named_within_three"]) == (4, 1, 2)
    rows = {r["picture"]: r for r in result["rows"]}
    assert rows["02.jpg"]["guesses"] == ["vase", "jug", "teapot"] and rows["02.jpg"]["within_three"]
    assert rows["04.jpg"]["guesses"] == [] and not rows["04.jpg"]["within_three"]
    assert "by_moment" not in result
    live = bs.score({"01.jpg": {"class": "lion", "at_s": 5.0}, "02.jpg": {"class": "teapot", "at_s": 15.0},
                     "03.jpg": {"class": "banana", "at_s": 5.0}}, {"01.jpg": ["lion"], "03.jpg": ["moon", "banana"]})
    assert live["by_moment"] == {"5 s": [1, 2, 2], "15 s": [0, 0, 1]}


def test_folders_hold_numbered_player_size_pictures_and_the_key_says_which_is_which(tmp_path):
    pictures = [({"class": c}, np.full((270, 480, 3), v, np.uint8)) for c, v in [("lion", 10), ("teapot", 200)]]
    pictures.append(({"class": "banana"}, np.full((300, 300, 3), 120, np.uint8)))  # another shape: letterboxed
    key = bs.write_folder(tmp_path / "live", pictures, random.Random(3))
    assert sorted(key) == ["01.jpg", "02.jpg", "03.jpg"]
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == sorted(key)  # nothing else, no class in a name
    for name, what in key.items():
        img = cv2.imread(str(tmp_path / "live" / name))
        assert img.shape == (540, 960, 3)
        value = {"lion": 10, "teapot": 200, "banana": 120}[what["class"]]
        assert abs(int(img[270, 480, 0]) - value) <= 2
    corner = cv2.imread(str(tmp_path / "live" / next(n for n, w in key.items() if w["class"] == "banana")))
    assert corner[270, 10].max() <= 2  # black bars beside a square picture


def test_the_brief_names_no_class_that_is_reported_or_tuned_on():
    brief = bs.BRIEF.lower()
    for label in bs.REPORT + bs.TUNE:
        assert label.lower() not in brief
    assert not set(bs.REPORT) & set(bs.TUNE)


def test_a_sheet_shows_the_pictures_in_the_classes_order_with_what_was_asked_under_each(tmp_path):
    colours = {"teapot": (200, 0, 0), "banana": (0, 200, 0), "lion": (0, 0, 200)}
    pictures = [({"class": c, "seed": seed}, np.full((27, 48, 3), colours[c], np.uint8))
                for c in colours for seed in (0, 1)]
    key = bs.write_folder(tmp_path / "stills", pictures, random.Random(3))
    bs.sheet(tmp_path / "stills", key, {}, ["lion", "teapot", "banana"], tmp_path / "sheet.jpg", seed=0)
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "sheet.jpg")), cv2.COLOR_BGR2RGB)
    tile_h = bs.PLAYER[1] + 44  # the picture, then its caption
    assert sheet.shape == (2 * tile_h, 2 * bs.PLAYER[0], 3)  # three of seed 0, two a row, one left blank
    centres = [sheet[tile_h * (i // 2) + 270, bs.PLAYER[0] * (i % 2) + 480] for i in range(3)]
    assert [tuple(int(v) // 50 for v in c) for c in centres] == [(0, 0, 4), (4, 0, 0), (0, 4, 0)]
    assert sheet[tile_h + 270, bs.PLAYER[0] + 480].max() < 30  # the empty fourth place
