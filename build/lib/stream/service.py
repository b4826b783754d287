"""Service: a running stream and the answers the page, the websocket and chat share.

It holds the pipeline (queue -> dream -> presenter), the live outputs that read from it
(RTMP encoder, chat reader), the viewer counts, and the state every client sees. One code
path turns a request from anywhere into an `Ack` or a `RequestError`; each edge (HTTP,
websocket, chat) renders those in its own terms. The state JSON is built once per change
and shared by every websocket client.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from dreamer.classes import RequestError

from .metrics import Metrics, Reading
from .pipeline import Health, Pipeline
from .requests import Ack
from .sanitize import clean_name, clean_request

log = logging.getLogger(__name__)

STATE_EVERY_S = 2.0  # state is pushed on change and at least this often


@dataclass(frozen=True)
class About:
    """What the page and /api/state say about the stream."""

    model: str
    device: str
    size: tuple[int, int]  # the dream's (width, height)
    prefix: str = "!dream"  # how chat asks


class Service:
    def __init__(self, pipeline: Pipeline, about: About):
        self.pipeline, self.queue, self.about = pipeline, pipeline.queue, about
        self.metrics = Metrics(self.reading)
        self.encoder = None  # an RtmpEncoder, when streaming out
        self.chat = None  # a ChatReader, when reading chat
        self.started = time.monotonic()
        self.viewers = {"mjpeg": 0, "websocket": 0}
        self.state_json = ""
        self.overlay_text = ""  # what the RTMP overlay draws; rebuilt with the state
        self.state_version = 0  # bumped whenever state_json changes
        self._state_event: asyncio.Event | None = None

    # -- requests -------------------------------------------------------------------------
    def request(self, text, user, key: str) -> Ack:
        """Queue a request from anywhere; raises RequestError. `key` is who is rate-limited
        (an address or a chat account); it is never shown."""
        try:
            if user is not None and not isinstance(user, str):
                raise RequestError("bad_request", "user must be a string")
            ack = self.queue.submit(clean_request(text), clean_name(user), key)
        except RequestError as e:
            self.metrics.requests.labels(e.code).inc()
            raise
        self.metrics.requests.labels("accepted").inc()
        self.refresh_state()
        return ack

    # -- state ----------------------------------------------------------------------------
    def state(self) -> dict:
        w, h = self.about.size
        return {**self.queue.snapshot(), "fps": {"dream": round(self.pipeline.engine.fps, 2),
                                                 "output": round(self.pipeline.presenter.rate, 2)},
                "size": [w, h], "model": self.about.model, "device": self.about.device,
                # people watching the picture; websocket clients are counted in /metrics
                "viewers": self.viewers["mjpeg"], "uptime_s": round(time.monotonic() - self.started, 1)}

    def refresh_state(self) -> None:
        """Rebuild the state JSON once and wake every websocket sender."""
        state = self.state()
        self.state_json = json.dumps({"type": "state", **state})
        who = state["target"].get("user")
        self.overlay_text = f"{self.about.prefix} {state['target']['label']}" + (f"  - {who}" if who else "")
        self.state_version += 1
        if self._state_event is not None:
            self._state_event.set()
            self._state_event = asyncio.Event()

    async def state_changed(self, after: int, timeout: float) -> None:
        if self.state_version > after:
            return
        if self._state_event is None:
            self._state_event = asyncio.Event()
        try:
            await asyncio.wait_for(self._state_event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def watch_state(self) -> None:
        """Push state on every change of target or queue, and at least every STATE_EVERY_S."""
        seen, last = -1, 0.0
        while True:
            self.queue.current()  # let the hold run out even while the dream thread is busy
            now = time.monotonic()
            if self.queue.version != seen or now - last >= STATE_EVERY_S:
                seen, last = self.queue.version, now
                self.refresh_state()
            await asyncio.sleep(0.2)

    # -- parts ----------------------------------------------------------------------------
    @property
    def workers(self) -> list:
        return self.pipeline.workers + ([self.encoder] if self.encoder is not None else [])

    def start(self) -> None:
        self.pipeline.start()
        if self.encoder is not None:
            self.encoder.start()

    def stop(self) -> None:
        """Blocking (joins threads): run it off the event loop."""
        if self.encoder is not None:
            self.encoder.stop()
        self.pipeline.stop()

    def health(self) -> Health:
        health = self.pipeline.health()
        if self.encoder is not None:
            health.workers[self.encoder.name] = self.encoder.state
        return health

    def add_viewer(self, kind: str, delta: int) -> None:
        self.viewers[kind] += delta

    def reading(self) -> Reading:
        engine = self.pipeline.engine
        return Reading(frames=engine.frames, steps=engine.frames * engine.settings.steps,
                       dream_errors=engine.frame_errors,
                       fps={"dream": engine.fps, "output": self.pipeline.presenter.rate},
                       viewers=dict(self.viewers), restarts={w.name: w.restarts for w in self.workers},
                       encoder_restarts=self.encoder.restarts if self.encoder else 0,
                       encoder_bitrate_kbps=self.encoder.bitrate_kbps if self.encoder else 0.0,
                       chat_connected=self.chat is not None and self.chat.connected.is_set())


def error(code: str, message: str, suggestions: list[str] | None = None) -> dict:
    """The contract's error message, as HTTP, websocket and chat send it."""
    return {"type": "error", "code": code, "message": message, "suggestions": suggestions or []}


def error_json(e: RequestError) -> dict:
    return error(e.code, e.message, e.suggestions)
