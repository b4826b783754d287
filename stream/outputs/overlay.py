"""The overlay drawn into the streamed frames: what is playing, who asked, how long it has
left, what comes next, and how to ask. Drawn at the output's resolution, so it reads at a
glance on 720p whatever the dream's size.

    lines = overlay_lines(state, "type !dream <class> in chat", elapsed_s=0.4)
    rgb = draw_overlay(rgb, lines, position="bottom", scale=1.0)
"""
from __future__ import annotations

import unicodedata

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_DUPLEX


def hershey_text(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only: accents are dropped ("Zoë" -> "Zoe"), other
    characters become "?"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c if c.isascii() else "?" for c in decomposed if c.isascii() or not unicodedata.combining(c))


def call_to_action(chat_prefix: str | None, text: str = "") -> str:
    """How viewers of the stream can ask, naming only what exists: a configured text (the
    page's public address, say), else the chat command when chat is read, else nothing."""
    if text:
        return text
    return f"type {chat_prefix} <class> in chat" if chat_prefix else ""


def overlay_lines(state: dict, ask: str, elapsed_s: float = 0.0) -> list[str]:
    """From the state JSON (target, queue): the playing line, then how to ask and what is next.
    `ask`: the call to action (`call_to_action`), "" for none; `elapsed_s`: seconds since the
    state was taken (the countdown keeps running)."""
    target = state.get("target") or {}
    first = target.get("label", "")
    if target.get("user"):
        first += f"  - asked by {target['user']}"
    if target.get("remaining_s") is not None:
        first += f"  - {max(0, round(target['remaining_s'] - elapsed_s))} s left"
    queue = state.get("queue") or []
    second = "  - ".join(part for part in (ask, f"next: {queue[0]['label']}" if queue else "") if part)
    return [first, second] if second else [first]


def draw_overlay(rgb: np.ndarray, lines: list[str], position: str = "bottom", scale: float = 1.0) -> np.ndarray:
    """White text on a dark band along the bottom (or top) of the picture; a new array."""
    lines = [hershey_text(t) for t in lines if t]
    if not lines:
        return rgb
    out = rgb.copy()
    h, w = out.shape[:2]
    sizes = [scale * max(0.4, h / 720) * f for f in (1.0, 0.75)][: len(lines)]  # the first line larger
    sizes += [sizes[-1]] * (len(lines) - len(sizes))
    metrics = [cv2.getTextSize(t, FONT, s, max(1, round(2 * s))) for t, s in zip(lines, sizes)]
    pad = max(4, round(12 * sizes[0]))
    band_h = sum(th + base for (_, th), base in metrics) + pad * (len(lines) + 1)
    band_w = min(w, max(tw for (tw, _), _ in metrics) + 2 * pad)
    y0 = h - band_h if position == "bottom" else 0
    band = out[y0:y0 + band_h, :band_w]
    band[:] = (band * 0.35).astype(np.uint8)
    y = y0 + pad
    for text, s, ((_, th), base) in zip(lines, sizes, metrics):
        y += th
        cv2.putText(out, text, (pad, y), FONT, s, (255, 255, 255), max(1, round(2 * s)), cv2.LINE_AA)
        y += base + pad
    return out
