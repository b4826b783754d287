"""A front door's pipeline (`serve --role front`): no model, no dream; the frames a dreamer
publishes (stream/relay/publish.py) on a shown bus of its own, and the dreamer's figures,
behind the same names the service reads of a `Pipeline` (queue, shown, engine, presenter,
health, workers), so the page, MJPEG, /frame.jpg, /view, the state and /healthz are today's.
"""
from __future__ import annotations

import json
import time

import cv2
import numpy as np

from ..core.framebus import FrameBus
from ..core.worker import Worker
from ..spine.pipeline import SHOWN_STALL_S, Health, bus_age


class Figures:
    """The dreamer's engine or presenter as its figures say (all zero until they come)."""

    def __init__(self) -> None:
        self.rate, self.frames, self.steps, self.frame_errors = 0.0, 0, 0, 0
        self.frame_ms: float = 0.0
        self.carry_ms = None


class FrameSubscriber(Worker):
    name = "frame-relay"

    def __init__(self, client, prefix: str, remote: "RemotePipeline"):
        super().__init__()
        self.client, self.remote = client, remote
        self.channel, self.key = prefix + "frames", prefix + "dreamer"
        self.received = 0

    def job(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            figures_due = 0.0
            while not self.stopping:
                message = pubsub.get_message(timeout=0.25)
                if message is not None and message["type"] == "message":
                    self._show(message["data"])
                if time.monotonic() >= figures_due:
                    self.remote.took(self.client.get(self.key))
                    figures_due = time.monotonic() + 1.0
        finally:
            pubsub.close()

    def _show(self, jpeg: bytes) -> None:
        bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:  # not a picture: not ours to show
            return
        self.remote.shown.publish(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), jpeg=jpeg)  # served as it came
        self.received += 1
        self.backoff.reset()


class RemotePipeline:
    source = None

    def __init__(self, queue, client, prefix: str, jpeg_quality: int = 85):
        self.queue = queue
        self.shown = FrameBus(jpeg_quality, encode=False)
        self.engine, self.presenter = Figures(), Figures()
        self.dreamer: dict = {}  # the dreamer's last figures; empty while none is there
        self.subscriber = FrameSubscriber(client, prefix, self)

    def took(self, raw: bytes | None) -> None:
        """The dreamer's figures (None: no dreamer has said anything for 5 s)."""
        try:
            figures = json.loads(raw) if raw is not None else {}
        except ValueError:
            figures = {}
        self.dreamer = figures if isinstance(figures, dict) else {}
        fps, frame_ms = self.dreamer.get("fps", {}), self.dreamer.get("frame_ms", {})
        self.engine.rate, self.presenter.rate = float(fps.get("dream", 0.0)), float(fps.get("output", 0.0))
        self.engine.frames, self.engine.steps = int(self.dreamer.get("frames", 0)), int(self.dreamer.get("steps", 0))
        self.engine.frame_ms, self.presenter.frame_ms = frame_ms.get("dream", 0.0), frame_ms.get("presenter", 0.0)

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
        dreamed = self.dreamer.get("health", {}).get("frame_age_s")
        return Health(ok, dreamed, shown, {w.name: w.state for w in self.workers}, self.subscriber.state == "running")
