"""Text from outside: what the boundary lets through, exactly."""
import numpy as np
import pytest

from dreamer.classes import RequestError
from stream.config import ServeSettings
from stream.core.sanitize import MAX_NAME, clean, clean_name, clean_request
from stream.front.origins import origin_allowed
from stream.outputs.overlay import (
    call_to_action,
    draw_overlay,
    hershey_text,
    overlay_lines,
)


@pytest.mark.parametrize("raw, want", [
    ("a\udc80b", "ab"),  # a lone surrogate (valid JSON: "a\\udc80b") is dropped
    ("\ud83d", "anonymous"),
    ("Ann\u202e evil", "Ann evil"),  # bidi override
    ("zero\u200bwidth", "zerowidth"),
    ("tab\tand\nnewline\r\n", "tab and newline"),
    ("nul\x00bell\x07", "nulbell"),
    ("  spaced   out  ", "spaced out"),
    ("Zoe\u0308", "Zoë"),  # NFC
    ("Z" + "\u0301" * 40 + "algo", "Ź\u0301algo"),  # zalgo: at most 2 marks per letter
    ("\u0301\u0301lead", "lead"),  # marks with nothing to sit on
    ("", "anonymous"),
    ("   ", "anonymous"),
    ("\U000f0000private", "private"),
    ("x" * 500, "x" * MAX_NAME),
])
def test_clean_name(raw, want):
    assert clean_name(raw) == want


def test_names_that_are_not_text_are_anonymous_never_an_address():
    assert clean_name(None) == "anonymous"
    assert clean_name(123) == "anonymous"


def test_clean_request_keeps_text_and_refuses_the_rest():
    assert clean_request("  Pizza\u200b +\tvolcano ") == "Pizza + volcano"
    with pytest.raises(RequestError) as e:
        clean_request("x" * 201)
    assert e.value.code == "too_long"
    for bad in ("", " \u200b\u202e ", None, 5, ["pizza"], {"a": 1}):
        with pytest.raises(RequestError) as e:
            clean_request(bad)
        assert e.value.code == "bad_request"


def test_clean_is_idempotent_and_encodable():
    for raw in ("a\udc80b\ud800", "Z\u0301\u0302\u0303\u0304", "日本語 テキスト", "emoji 🐙"):
        once = clean(raw)
        assert clean(once) == once
        once.encode("utf-8")  # would raise on a surrogate


def test_overlay_draws_any_text_without_crashing():
    rgb = np.zeros((96, 160, 3), np.uint8)
    assert hershey_text("Zoë 日本") == "Zoe ??"
    for text in ("volcano - anonymous", "Zoë", "日本語", clean("a\udc80b"), "🐙" * 50, ""):
        out = draw_overlay(rgb, [text, text])
        assert out.shape == rgb.shape
    assert draw_overlay(rgb, ["volcano"]).any()


def test_overlay_says_what_plays_who_asked_how_long_what_is_next_and_how_to_ask():
    state = {"target": {"label": "volcano", "user": "ann", "remaining_s": 12.4},
             "queue": [{"label": "pizza + daisy"}, {"label": "lemon"}]}
    ask = call_to_action("!dream")
    assert overlay_lines(state, ask, elapsed_s=2.0) == [
        "volcano  - asked by ann  - 10 s left", "type !dream <class> in chat  - next: pizza + daisy"]
    assert overlay_lines({"target": {"label": "daisy", "user": None, "remaining_s": 3}, "queue": []},
                         call_to_action("!d"), 9) == ["daisy  - 0 s left", "type !d <class> in chat"]


def test_the_overlays_call_to_action_names_only_what_exists():
    state = {"target": {"label": "volcano", "remaining_s": 17}, "queue": [{"label": "lemon"}]}
    no_chat = call_to_action(None)
    assert no_chat == "" and overlay_lines(state, no_chat) == ["volcano  - 17 s left", "next: lemon"]
    assert overlay_lines({**state, "queue": []}, no_chat) == ["volcano  - 17 s left"]
    page = call_to_action(None, "ask at dream.example.org")
    assert overlay_lines(state, page)[1] == "ask at dream.example.org  - next: lemon"
    assert call_to_action("!dream", "ask at dream.example.org") == "ask at dream.example.org"  # said, it wins


def test_overlay_is_drawn_at_the_output_size_where_asked():
    rgb = np.full((720, 1280, 3), 200, np.uint8)
    bottom = draw_overlay(rgb, ["volcano  - asked by ann  - 10 s", "type !dream <class> in chat"])
    changed = np.argwhere((bottom != rgb).any(-1))
    assert changed[:, 0].min() > 600 and changed[:, 0].max() == 719  # a band along the bottom
    assert changed[:, 1].max() > 400  # text big enough to read at a glance on 720p
    top = draw_overlay(rgb, ["volcano"], position="top")
    assert np.argwhere((top != rgb).any(-1))[:, 0].max() < 80


@pytest.mark.parametrize("origin, host, ok", [
    (None, "127.0.0.1:8080", True),  # curl, scripts
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://localhost:8080", "127.0.0.1:8765", True),  # the page, on the websocket port
    ("http://[::1]:8080", "[::1]:8765", True),
    ("http://192.168.1.5:8080", "192.168.1.5:8765", True),  # the page as the LAN sees it
    ("https://dream.example", "dream.example", True),  # behind a reverse proxy
    ("http://evil.example", "127.0.0.1:8080", False),
    ("http://evil.example:8080", "127.0.0.1:8080", False),
    ("http://127.0.0.1:9999", "127.0.0.1:8080", False),  # another local app
    ("null", "127.0.0.1:8080", False),  # sandboxed frames, file://
    ("file://", "127.0.0.1:8080", False),
    ("http://127.0.0.1:99999", "127.0.0.1:8080", False),
    ("http://allowed.example", "127.0.0.1:8080", True),
])
def test_origin_allowed(origin, host, ok):
    assert origin_allowed(origin, host, ServeSettings(allowed_origins=["http://allowed.example"])) is ok


def test_origin_star_allows_any():
    assert origin_allowed("http://evil.example", "x", ServeSettings(allowed_origins=["*"]))


def test_client_address_trusts_forwarded_for_only_from_our_proxies():
    from stream.front.origins import client_address

    proxies = ["127.0.0.1", "10.0.0.0/8"]
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"  # not a proxy: ignored
    assert client_address("127.0.0.1", "198.51.100.7", proxies) == "198.51.100.7"
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", proxies) == "198.51.100.7"
    assert client_address("127.0.0.1", None, proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", "garbage, 10.0.0.1", proxies) == "garbage"  # a key, never shown
    assert client_address("127.0.0.1", "198.51.100.7", []) == "127.0.0.1"
