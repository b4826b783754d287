"""Prometheus metrics (names prefixed `dreamstream_`), one registry per app so tests can build many."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.frames = Counter("dreamstream_frames", "Optimized frames dreamed", registry=r)
        self.steps = Counter("dreamstream_dream_steps", "Gradient steps taken", registry=r)
        self.fps = Gauge("dreamstream_fps", "Frames per second", ["kind"], registry=r)
        self.viewers = Gauge("dreamstream_viewers", "Connected viewers", ["kind"], registry=r)
        self.requests = Counter("dreamstream_requests", "Requests by outcome", ["outcome"], registry=r)
        self.encoder_restarts = Counter("dreamstream_encoder_restarts", "RTMP encoder restarts", registry=r)
        self.dream_errors = Counter("dreamstream_dream_errors", "Dream loop errors (then retried)", registry=r)
        for kind in ("dream", "output"):
            self.fps.labels(kind)
        for kind in ("mjpeg", "websocket"):
            self.viewers.labels(kind)

    def render(self) -> bytes:
        return generate_latest(self.registry)
