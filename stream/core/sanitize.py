"""Text from outside (request texts, viewer names, chat lines), normalised once where it enters;
and what a log or the page may show of a URL that holds a secret (`mask_url`).

Everything behind this boundary (the queue, the state JSON, logs, the page, the RTMP
overlay drawn by OpenCV) may trust what it gets: valid Unicode in NFC, printable, one line,
bounded length, no bidi overrides, no zalgo towers. Lone surrogates ("a\\udc80b" is valid
JSON) are the dangerous case: OpenCV's text functions crashed the process on one.

    clean_name("  Ann\\u202e  ")   # -> "Ann"
    clean_name("")                 # -> "anonymous"   (never an address)
    clean_request("pizza\\x00")     # -> "pizza"
"""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from dreamer.classes import MAX_TEXT, RequestError

ANONYMOUS = "anonymous"
MAX_NAME = 40  # characters of a viewer's name that are shown
MAX_MARKS = 2  # combining marks kept on one base character (enough for any real script)
# Unicode categories dropped outright: controls, format characters (bidi overrides,
# zero-width joiners), lone surrogates, private use and unassigned code points.
DROPPED = {"Cc", "Cf", "Cs", "Co", "Cn"}


def clean(text: str) -> str:
    """Printable NFC text on one line; runs of whitespace become one space."""
    # A lone surrogate cannot be encoded, so NFC would keep it: drop it first.
    text = text.encode("utf-8", "ignore").decode("utf-8")
    out, marks = [], 0
    for ch in unicodedata.normalize("NFD", text):  # marks counted decomposed: "é" is e + 1 mark
        cat = unicodedata.category(ch)
        if cat in DROPPED and not ch.isspace():
            continue
        if cat.startswith("M"):
            marks += 1
            if marks > MAX_MARKS or not out:
                continue
        else:
            marks = 0
        out.append(ch)
    return " ".join(unicodedata.normalize("NFC", "".join(out)).split())


def clean_name(name) -> str:
    """A viewer's name as others may see it; anything unusable is "anonymous"."""
    if not isinstance(name, str):
        return ANONYMOUS
    return clean(name[: 4 * MAX_NAME])[:MAX_NAME].strip() or ANONYMOUS


def clean_request(text) -> str:
    """A request text, or RequestError (bad_request / too_long) before any matching."""
    if not isinstance(text, str):
        raise RequestError("bad_request", 'the request must be text, e.g. {"text": "volcano"}')
    if len(text) > MAX_TEXT:
        raise RequestError("too_long", f"request is {len(text)} characters; the limit is {MAX_TEXT}")
    text = clean(text)
    if not text:
        raise RequestError("bad_request", "empty request: type a class name such as 'volcano'")
    return text


def mask_url(url: str) -> str:
    """rtmp://host:port/app/KEY -> rtmp://host:port/app/****: the application name stays
    (it is no secret), every later path part, the userinfo and the query go. A URL with only
    one path part (rtmp://host/KEY) may carry the key there: it is masked too."""
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    shown = path[:1] if len(path) > 1 else []
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/" + "/".join(shown + ["****"] * bool(path or parts.query))
