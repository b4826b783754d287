"""A front door's pipeline (`serve --role front`): no model, no dream; the frames a dreamer
publishes (stream/relay/publish.py) on a shown bus of its own, and the dreamer's figures,
behind the same names the service reads of a `Pipeline` (queue, shown, engine, presenter,
health, workers), so the page, MJPEG, /frame.jpg, /view, the state and /healthz are today's.
"""
from __future__ import annotations

import json
import logging
import time

import redis

from ..core.framebus import FrameBus, decode_jpeg
from ..core.worker import Worker
from ..spine.health import SHOWN_STALL_S, Health, bus_age
from .publish import FIGURES, FIGURES_TTL_MS, FRAMES

log = logging.getLogger(__name__)
# a dreamer says it is there (its figures outlive it by FIGURES_TTL_MS) and no frame came: subscribe again
SILENT_S = 2 * FIGURES_TTL_MS / 1000


class Figures:
    """The dreamer's engine or presenter as its figures say (all zero until they come)."""

    def __init__(self) -> None:
        self.rate, self.frames, self.steps, self.frame_errors, self.last_steps = 0.0, 0, 0, 0, 0
        self.frame_ms: float = 0.0
        self.carry_ms = None


class FrameSubscriber(Worker):
    name = "frame-relay"

    def __init__(self, client, prefix: str, remote: "RemotePipeline"):
        super().__init__()
        self.client, self.remote = client, remote
        self.channel, self.key = prefix + FRAMES, prefix + FIGURES
        self.received = 0

    def job(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            figures_due, heard = 0.0, time.monotonic()
            while not self.stopping:
                newest = None  # a front that fell behind shows the newest frame, not a backlog
                message = pubsub.get_message(timeout=0.25)
                while message is not None:
                    if message["type"] == "message":
                        newest, heard = message["data"], time.monotonic()
                    message = pubsub.get_message(timeout=0.0)
                if newest is not None:
                    self._show(newest)
                now = time.monotonic()
                if now >= figures_due:
                    figures_due = now + 1.0
                    try:
                        self.remote.took(self.client.get(self.key))
                    except redis.RedisError as e:  # the frames may still come: say it, go on
                        log.debug("frame-relay: the dreamer's figures: %s", e)
                # a connection dropped without a word (a NAT's idle timeout) never errors: a
                # dreamer that says it is there while no frame comes means subscribing again
                if self.remote.dreamer and now - heard > SILENT_S:
                    raise ConnectionError(f"no frame for {SILENT_S:g} s while the dreamer is there")
        finally:
            pubsub.close()

    def _show(self, jpeg: bytes) -> None:
        rgb = decode_jpeg(jpeg)
        if rgb is None:  # not a picture: not ours to show
            return
        self.remote.shown.publish(rgb, jpeg=jpeg)  # served as it came
        self.received += 1
        self.backoff.reset()


class RemotePipeline:
    source = None
    dreams = False  # the dreamer ends holds; a front door only shows them

    def __init__(self, queue, client, prefix: str, jpeg_quality: int = 85):
        self.queue = queue
        self.shown = FrameBus(jpeg_quality, encode=False)
        self.engine, self.presenter = Figures(), Figures()
        self.dreamer: dict = {}  # the dreamer's last figures; empty while none is there
        self.dreamed_age_s: float | None = None  # its newest dreamed frame's age, as it says
        self.subscriber = FrameSubscriber(client, prefix, self)

    def took(self, raw: bytes | None) -> None:
        """The dreamer's figures (None: no dreamer has said anything for 5 s)."""
        try:
            figures = json.loads(raw) if raw is not None else {}
            fps, frame_ms = figures.get("fps", {}), figures.get("frame_ms", {})
            e, p = Figures(), Figures()
            e.rate, p.rate = float(fps.get("dream", 0.0)), float(fps.get("output", 0.0))
            e.frames, e.steps = int(figures.get("frames", 0)), int(figures.get("steps", 0))
            e.last_steps, e.frame_errors = int(figures.get("last_steps", 0)), int(figures.get("dream_errors", 0))
            e.frame_ms, p.frame_ms = float(frame_ms.get("dream", 0.0)), float(frame_ms.get("presenter", 0.0))
            age = figures.get("health", {}).get("frame_age_s")
        except (ValueError, TypeError, AttributeError):  # not figures this code reads (another version's)
            figures, e, p, age = {}, Figures(), Figures(), None
        self.dreamer, self.engine, self.presenter, self.dreamed_age_s = figures, e, p, age

    @property
    def workers(self) -> list:
        return [self.subscriber]

    @property
    def buses(self) -> list[FrameBus]:
        return [self.shown]

    def start(self) -> None:
        self.subscriber.start()

    def stop(self) -> None:
        self.shown.close()
        self.subscriber.stop()

    def source_health(self, now: float | None = None) -> dict | None:
        return None

    def health(self, now: float | None = None) -> Health:
        """ok while the dreamer's frames arrive (its own dreamed frames' age as it says);
        flowing (systemd's watchdog) while this process listens for them: a dreamer that is
        down is not this process's fault, and a restart would not bring it back."""
        now = time.monotonic() if now is None else now
        shown = bus_age(self.shown, now)
        ok = shown is not None and shown < SHOWN_STALL_S
        listening = self.subscriber.state == "running"
        return Health(ok, self.dreamed_age_s, shown, {w.name: w.state for w in self.workers}, listening)
