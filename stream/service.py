"""Service: the pieces of a running stream, and the answers the HTTP and websocket sides share.

One code path turns a request (from the page, the websocket, POST /api/request or chat)
into an ack or an error, and one function builds the state JSON, once per change, for
every client.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from dreamer.classes import RequestError

from .chat import ChatReader
from .config import Config
from .engine import DreamEngine
from .framebus import FrameBus
from .metrics import Metrics
from .presenter import Presenter
from .requests import RequestQueue
from .sanitize import clean_name, clean_request
from .rtmp import RtmpEncoder

log = logging.getLogger(__name__)

HTTP_STATUS = {"rate_limited": 429}  # every other request error is a 400
STATE_EVERY_S = 2.0  # state is pushed on change and at least this often


class Service:
    def __init__(self, cfg: Config, model, device: str, rtmp_url: str = "", chat_token: str | None = None):
        self.cfg, self.model_name, self.device = cfg, cfg.model, device
        self.metrics = Metrics()
        self.bus = FrameBus(cfg.serve.jpeg_quality)  # what viewers see
        self.queue = RequestQueue(cfg.queue, cfg.playlist)
        d = cfg.dream
        if cfg.serve.output_fps > 0:  # dreamed keyframes -> presenter -> a steady output rate
            self.keyframes = FrameBus(encode=False)
            self.presenter = Presenter(self.keyframes, self.bus, cfg.serve.output_fps, d.zoom, d.spin_deg, d.drift)
        else:
            self.keyframes, self.presenter = self.bus, None
        self.engine = DreamEngine(cfg, model, self.keyframes, self.queue, self.metrics)
        self.overlay_text = ""  # what the RTMP overlay draws; rebuilt with the state
        self.chat = None
        if cfg.chat.url:  # requests from chat share the queue, rate-limited per chat user
            self.chat = ChatReader(cfg.chat, lambda text, user: self.request(text, user, f"chat:{user.lower()}")[1],
                                   chat_token)
        self.encoder = None
        if rtmp_url:
            nvenc = cfg.rtmp.encoder == "nvenc" or (cfg.rtmp.encoder == "auto" and device.startswith("cuda"))
            self.encoder = RtmpEncoder(rtmp_url, cfg.rtmp, self.bus, self.metrics, lambda: self.overlay_text, nvenc)
        self.started = time.monotonic()
        self.viewers = {"mjpeg": 0, "websocket": 0}
        self.state_json = ""
        self.state_version = 0  # bumped whenever state_json changes
        self._state_event: asyncio.Event | None = None

    # -- requests -------------------------------------------------------------------------
    def request(self, text, user, key: str) -> tuple[int, dict]:
        """(HTTP status, JSON answer) for one request; the websocket sends the same JSON."""
        try:
            if user is not None and not isinstance(user, str):
                raise RequestError("bad_request", "user must be a string")
            ack = self.queue.submit(clean_request(text), clean_name(user), key)
        except RequestError as e:
            self.metrics.requests.labels(e.code).inc()
            return HTTP_STATUS.get(e.code, 400), error(e.code, e.message, e.suggestions)
        self.metrics.requests.labels("accepted").inc()
        self.refresh_state()
        return 200, ack.to_json()

    # -- state ----------------------------------------------------------------------------
    def state(self) -> dict:
        w, h = self.cfg.dream.size
        return {**self.queue.snapshot(), "fps": {"dream": round(self.engine.fps, 2),
                                                 "output": round(self.output_fps(), 2)},
                "size": [w, h], "model": self.model_name, "device": self.device,
                # people watching the picture; websocket clients are counted in /metrics
                "viewers": self.viewers["mjpeg"], "uptime_s": round(time.monotonic() - self.started, 1)}

    def refresh_state(self) -> None:
        """Rebuild the state JSON once and wake every websocket sender."""
        state = self.state()
        self.state_json = json.dumps({"type": "state", **state})
        who = state["target"].get("user")
        self.overlay_text = f"{self.cfg.chat.prefix} {state['target']['label']}" + (f"  - {who}" if who else "")
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
                self.metrics.fps.labels("output").set(self.output_fps())
                self.refresh_state()
            await asyncio.sleep(0.2)

    def output_fps(self) -> float:
        return self.presenter.rate if self.presenter else self.engine.fps

    def threads(self) -> list:
        return [t for t in (self.engine, self.presenter, self.encoder) if t is not None]

    def start(self) -> None:
        for t in self.threads():
            t.start()

    def stop(self) -> None:
        """Blocking (joins threads): run it off the event loop."""
        for t in self.threads():
            t.stop()
        self.keyframes.close()
        self.bus.close()

    def add_viewer(self, kind: str, delta: int) -> None:
        self.viewers[kind] += delta
        self.metrics.viewers.labels(kind).set(self.viewers[kind])


def error(code: str, message: str, suggestions: list[str] | None = None) -> dict:
    return {"type": "error", "code": code, "message": message, "suggestions": suggestions or []}
