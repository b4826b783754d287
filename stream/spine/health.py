"""A running stream's health, from the age of the newest frame on each bus: what /healthz,
the state and systemd's watchdog read. Apart from the pipeline so that a front door
(stream/relay/remote.py), which has no dream and loads no model, says its health the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.framebus import FrameBus

DREAM_STALL_S = 30.0  # no dreamed frame for this long: the dream is stuck (a frame takes < 2 s)
SHOWN_STALL_S = 5.0  # no shown frame for this long: the presenter is stuck (it shows 25 a second)
SOURCE_STALL_S = 10.0  # no source frame for this long: the source is gone (reconnecting, or dead)


@dataclass
class Health:
    ok: bool  # everything flows, the source included
    dreamed_age_s: float | None  # None: no frame yet
    shown_age_s: float | None
    workers: dict[str, str]  # name -> running | restarting | ...
    flowing: bool = True  # dreamed and shown frames flow (a dead source leaves them flowing)
    source: dict | None = None  # the live source's health, when there is one
    queue: str | None = None  # a shared queue's: "ok" or "unavailable" (Redis lost)
    webrtc: dict | None = None  # WebRTC viewers now, and those dropped for never connecting
    lease: dict | None = None  # a dreamer beside others on one stream: active or standby (stream/relay/lease.py)

    def to_json(self) -> dict:
        out = {"ok": self.ok, "frame_age_s": self.dreamed_age_s, "shown_age_s": self.shown_age_s,
               "workers": self.workers}
        if self.source is not None:
            out["source"] = self.source
        if self.queue is not None:
            out["queue"] = self.queue
        if self.webrtc is not None:
            out["webrtc"] = self.webrtc
        if self.lease is not None:
            out["lease"] = self.lease
        return out


def bus_age(bus: FrameBus, now: float) -> float | None:
    frame = bus.latest()
    return None if frame is None else round(now - frame.time, 2)
