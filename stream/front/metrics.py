"""Prometheus metrics (names prefixed `dreamstream_`), one registry per service so tests can build many.

Counts that live in the parts themselves (frames dreamed, restarts of each worker, viewers)
are read from them when /metrics is scraped, through `source()`; only request outcomes are
counted here, where the service decides them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Reading:
    """What the running parts report at scrape time."""

    frames: int = 0
    steps: int = 0
    dream_errors: int = 0
    fps: dict[str, float] = field(default_factory=dict)  # dream, output
    viewers: dict[str, int] = field(default_factory=dict)  # mjpeg, websocket
    restarts: dict[str, int] = field(default_factory=dict)  # worker name -> restarts
    encoder_restarts: int = 0
    encoder_bitrate_kbps: float = 0.0
    encoder_frames: int = 0  # video frames sent to the ingest
    encoder_pictures: int = 0  # ... that showed a new picture
    steps_per_frame: int = 0  # what the frame budget gave the newest dreamed frame
    frame_ms: dict[str, float] = field(default_factory=dict)  # part -> ms per frame (moving average)
    chat_connected: bool = False
    webrtc_frames: int = 0  # frames encoded for WebRTC viewers (once for all of them)
    webrtc_bytes: int = 0


class _Live:
    def __init__(self, source: Callable[[], Reading]):
        self.source = source

    def collect(self):
        r = self.source()
        yield CounterMetricFamily("dreamstream_frames", "Optimized frames dreamed", value=r.frames)
        yield CounterMetricFamily("dreamstream_dream_steps", "Gradient steps taken", value=r.steps)
        yield CounterMetricFamily("dreamstream_dream_errors", "Dream frames that failed (then retried)",
                                  value=r.dream_errors)
        fps = GaugeMetricFamily("dreamstream_fps", "Frames per second", labels=["kind"])
        for kind, value in r.fps.items():
            fps.add_metric([kind], value)
        yield fps
        viewers = GaugeMetricFamily("dreamstream_viewers", "Connected viewers", labels=["kind"])
        for kind, value in r.viewers.items():
            viewers.add_metric([kind], value)
        yield viewers
        restarts = CounterMetricFamily("dreamstream_worker_restarts", "Restarts of each supervised worker",
                                       labels=["worker"])
        for name, value in r.restarts.items():
            restarts.add_metric([name], value)
        yield restarts
        yield CounterMetricFamily("dreamstream_encoder_restarts", "RTMP encoder restarts", value=r.encoder_restarts)
        yield GaugeMetricFamily("dreamstream_encoder_bitrate_kbps", "RTMP bitrate sent, kb/s",
                                value=r.encoder_bitrate_kbps)
        yield CounterMetricFamily("dreamstream_encoder_frames", "Video frames sent to the RTMP ingest",
                                  value=r.encoder_frames)
        yield CounterMetricFamily("dreamstream_encoder_pictures", "Frames sent to the ingest that showed a new picture",
                                  value=r.encoder_pictures)
        yield GaugeMetricFamily("dreamstream_steps_per_frame", "Gradient steps the frame budget gave the newest frame",
                                value=r.steps_per_frame)
        frame_ms = GaugeMetricFamily("dreamstream_frame_ms", "Milliseconds one frame takes in each part",
                                     labels=["part"])
        for part, value in r.frame_ms.items():
            frame_ms.add_metric([part], value)
        yield frame_ms
        yield CounterMetricFamily("dreamstream_webrtc_frames", "Frames encoded for WebRTC viewers, once for all",
                                  value=r.webrtc_frames)
        yield CounterMetricFamily("dreamstream_webrtc_bytes", "H.264 bytes encoded for WebRTC viewers",
                                  value=r.webrtc_bytes)
        yield GaugeMetricFamily("dreamstream_chat_connected", "1 while the chat reader is in its channel",
                                value=float(r.chat_connected))


class Metrics:
    def __init__(self, source: Callable[[], Reading]):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("dreamstream_requests", "Requests by outcome", ["outcome"], registry=r)
        r.register(_Live(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)
