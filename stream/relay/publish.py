"""The dreamer's side of `serve --role dreamer`: every shown frame, as the JPEG a viewer gets,
published on the stream's Redis channel, and the dreamer's figures (rates, steps, health) kept
in one key, so front doors (`stream/relay/remote.py`) serve the picture without a model. Both go
through the stream's lease (`lease.py`): only the active dreamer's arrive.

    PREFIX + "frames"    a channel: one message per shown frame (its JPEG)
    PREFIX + "dreamer"   the figures as JSON, rewritten every second, gone 5 s after the last

A front door costs the dreamer nothing: one publish per frame whatever the number of fronts
and of their viewers. Redis lost: the worker's backoff, one line per event.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import redis

from ..core.framebus import FrameBus
from ..core.worker import Worker

log = logging.getLogger(__name__)

FRAMES, FIGURES = "frames", "dreamer"  # the channel's and the key's names, after the stream's prefix
FIGURES_EVERY_S = 1.0
FIGURES_TTL_MS = 5000  # a dreamer gone is seen as gone within this


class FramePublisher(Worker):
    name = "frame-relay"

    def __init__(self, lease, bus: FrameBus, figures: Callable[[], dict]):
        """`lease`: the stream's Lease (stream/relay/lease.py), which publishes only while this
        process holds it; `figures`: the dreamer's figures now (Service.figures)."""
        super().__init__()
        self.lease, self.bus, self.figures = lease, bus, figures
        self.key = lease.prefix + FIGURES
        self.published = 0

    def job(self) -> None:
        seq, figures_due = 0, 0.0
        while not self.stopping:
            frame = self.bus.wait(seq, timeout=0.5)
            if frame is not None:
                seq = frame.seq
                if self.lease.publish(self.bus.jpeg(frame)):  # encoded once, as for MJPEG viewers
                    self.published += 1
                if self.backoff.reset():
                    log.info("frame-relay: publishing again")
            if time.monotonic() >= figures_due:
                figures_due = time.monotonic() + FIGURES_EVERY_S
                try:  # a write refused (a full Redis) must not stop the picture, which PUBLISH still carries
                    self.lease.set_figures(self.key, json.dumps(self.figures()), FIGURES_TTL_MS)
                except redis.ResponseError as e:
                    log.debug("frame-relay: the figures: %s", e)
