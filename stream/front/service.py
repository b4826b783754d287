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
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from dreamer.classes import RequestError

from ..core.framebus import encode_jpeg
from ..core.sanitize import clean_name, clean_request
from ..outputs.overlay import overlay_lines
from ..queue.requests import Ack
from ..spine.health import Health
from .metrics import Metrics, Reading

if TYPE_CHECKING:  # a front door's service holds a RemotePipeline, and never imports the dream
    from ..spine.pipeline import Pipeline

log = logging.getLogger(__name__)

STATE_EVERY_S = 2.0  # state is pushed on change and at least this often
PUSH_GAP_S = 0.2  # ...and at most this often: 500 viewers arriving are a few pushes, not 500
TICK_S = 0.1  # the queue looked at (a shared one read again) this often: another door's request shows within it
RECENT = 8  # dreams kept in the strip of recent ones
THUMB_W = 192


@dataclass
class Recent:
    """A dream that has ended: what, who asked, its last picture (a small JPEG), and its clip
    once written (with [clips] on)."""

    id: str
    label: str
    user: str | None
    jpeg: bytes
    clip: str | None = None  # the clip's URL

    def to_json(self, clips: bool = True) -> dict:
        """`clips`: this process serves the clips (a front door does not: no link to a 404)."""
        return {"id": self.id, "label": self.label, "user": self.user, "thumb": f"/recent/{self.id}.jpg",
                "clip": self.clip if clips else None}


def thumbnail(rgb: np.ndarray) -> bytes:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (THUMB_W, max(1, round(h * THUMB_W / w))), interpolation=cv2.INTER_AREA)
    return encode_jpeg(small, 80)


@dataclass(frozen=True)
class About:
    """What the page and /api/state say about the stream."""

    model: str
    device: str
    size: tuple[int, int]  # the dream's (width, height)
    ask: str = ""  # the overlay's call to action (overlay.call_to_action): "" says nothing


class Service:
    def __init__(self, pipeline: Pipeline, about: About, store=None):
        """`store`: where the queue is kept (stream/queue/store.py); the recent strip is kept there
        too, and picked up from it. With a shared queue, its RedisShared: the strip every
        process shows, read again with each state refresh."""
        self.pipeline, self.queue, self.about, self.store = pipeline, pipeline.queue, about, store
        self.metrics = Metrics(self.reading)
        self.encoder = None  # an RtmpEncoder, when streaming out
        self.publisher = None  # a FramePublisher, when dreaming for front doors (--role dreamer)
        self.lease = None  # the stream's Lease (--role dreamer): this dreamer active or standing by
        self.webrtc = None  # the H264Packets encoder for WebRTC viewers ([webrtc] enabled)
        self.whep = None  # ...and its peers (stream/front/whep.py)
        self.whip = None  # the live source's WHIP publisher (stream/front/whip.py), with --source whip
        self.chat = None  # a ChatReader, when reading chat
        self.clips = None  # a Clips, when [clips] folder is set
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = time.monotonic()
        self.viewers = {"mjpeg": 0, "websocket": 0}
        # Shown frames are JPEG-encoded only while someone watches MJPEG: a 720p stream to an
        # RTMP ingest with nobody on the page saves 25 encodes a second (1.6 ms each at 720p).
        self.jpeg_wanted, pipeline.shown.encode = pipeline.shown.encode, False
        self.mjpeg_transports: set = set()  # each MJPEG viewer's connection, dropped at shutdown
        self.recent: deque[Recent] = deque(maxlen=RECENT)
        if store is not None:
            self.recent.extend(Recent(**r) for r in store.load_recent() or [])
        self.state_json = ""
        self._state: tuple[dict, float] = ({}, 0.0)  # the last state and when it was taken
        self.state_version = 0  # bumped whenever state_json changes
        self._state_event: asyncio.Event | None = None
        self._viewers_changed = False  # pushed with the next state (a page counts itself at once)
        self._viewers_everywhere: int | None = None  # with a shared queue: every process's MJPEG viewers
        self._shared_read = self.queue.snapshot() if self.queue.shared is not None else None
        self._read_lock = threading.Lock()

    # -- requests -------------------------------------------------------------------------
    async def request(self, text, user, key: str) -> Ack:
        """Queue a request from anywhere; raises RequestError. `key` is who is rate-limited
        (an address or a chat account); it is never shown."""
        try:
            if user is not None and not isinstance(user, str):
                raise RequestError("bad_request", "user must be a string")
            ack = await self._queue_call(self.queue.submit, clean_request(text), clean_name(user), key)
        except RequestError as e:
            self.metrics.requests.labels(e.code).inc()
            raise
        self.metrics.requests.labels("accepted").inc()
        self.refresh_state()
        return ack

    async def attempt(self, key: str) -> None:
        """A class lookup spends from `key`'s request budget; RequestError when it is spent."""
        await self._queue_call(self.queue.attempt, key)

    async def queue_summary(self) -> str:
        """What plays and what is next, in one line (chat's !queue)."""
        snap = self._queue_state()
        t = snap["target"]
        line = f"now: {t['label']} ({round(t['remaining_s'])} s left)"
        upcoming = [q["label"] for q in snap["queue"][:5]]
        return line + (" - next: " + ", ".join(upcoming) if upcoming else " - nothing queued: ask for something")

    async def skip(self) -> str:
        label = (await self._queue_call(self.queue.skip)).label
        self.refresh_state()
        return label

    async def clear(self) -> int:
        n = await self._queue_call(self.queue.clear)
        self.refresh_state()
        return n

    async def _queue_call(self, call, *args):
        """`call(*args)` on the queue. Shared, it goes to Redis (a round trip; up to the
        timeout when Redis is lost) and waits for the queue's lock, which the dream thread
        holds through its own transaction: so it runs off the event loop, and the state is read
        there after it. A local queue answers in microseconds, in place."""
        if self.queue.shared is None:
            return call(*args)

        def call_then_read():
            try:
                return call(*args)
            finally:
                self._read_shared(reread=False)
        return await asyncio.to_thread(call_then_read)

    def _reread(self) -> None:
        """Off the event loop (shared): end a hold that has run out (a dreamer), read the newest state."""
        if self.pipeline.dreams:
            self.queue.current()
        self._read_shared(reread=True)

    def _read_shared(self, reread: bool) -> None:
        """Read and kept in one step, so a read taken before a request's never replaces one taken after."""
        with self._read_lock:
            self._shared_read = self.queue.snapshot(reread=reread)

    def _queue_state(self) -> dict:
        """The queue's part of the state: shared, as last read off the event loop (never a wait on
        Redis or the dream thread here); local, now."""
        return self.queue.snapshot() if self.queue.shared is None else self._shared_read

    # -- state ----------------------------------------------------------------------------
    def state(self) -> dict:
        w, h = self.about.size
        encoder, chat = self.encoder, self.chat
        return {**self._queue_state(), "fps": {"dream": round(self.pipeline.engine.rate, 2),
                                                 "output": round(self.pipeline.presenter.rate, 2)},
                "size": [w, h], "model": self.about.model, "device": self.about.device,
                # people watching the picture; websocket clients are counted in /metrics
                "viewers": self._viewers_everywhere if self._viewers_everywhere is not None
                else self.watching(), "uptime_s": round(time.monotonic() - self.started, 1),
                "stream": {"encoder": None if encoder is None else {
                               "state": "live" if encoder.connected else encoder.state,
                               "bitrate_kbps": round(encoder.bitrate_kbps), "reconnects": encoder.restarts},
                           "chat": None if chat is None else {"connected": chat.connected.is_set()},
                           "listeners": self.viewers["websocket"]},
                "recent": [r.to_json(clips=self.pipeline.dreams) for r in self.recent],
                **({"source": self.pipeline.source_health()} if self.pipeline.source is not None else {}),
                "clips": self.clips.listing() if self.clips is not None else []}

    def refresh_state(self) -> None:
        """Rebuild the state JSON once and wake every websocket sender."""
        state = self.state()
        self.state_json = json.dumps({"type": "state", **state})
        self._state = (state, time.monotonic())
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
        """Push state on every change of target, queue or viewer count (at most every PUSH_GAP_S),
        and at least every STATE_EVERY_S; when a dream ends, keep it in the strip of recent ones."""
        seen, last = -1, 0.0
        self._loop = asyncio.get_running_loop()
        playing = self._queue_state()["target"]
        while True:
            if self.queue.shared is not None:  # other processes' changes, read within a tick
                await asyncio.to_thread(self._reread)
            elif self.pipeline.dreams:  # let the hold run out even while the dream thread is busy;
                self.queue.current()  # a front door leaves that to the dreamer (none there: none ends)
            now = time.monotonic()
            changed = self.queue.version != seen or self._viewers_changed
            if (changed and now - last >= PUSH_GAP_S) or now - last >= STATE_EVERY_S:
                seen, last, self._viewers_changed = self.queue.version, now, False
                if self.queue.shared is not None:  # the viewers at every process (the last sum while Redis is lost)
                    everywhere = await asyncio.to_thread(self.queue.shared.viewers, self.watching())
                    if everywhere is not None:
                        self._viewers_everywhere = everywhere
                target = self._queue_state()["target"]
                if target["id"] != playing["id"]:
                    if self.lease is None or self.lease.held():  # a standby's last picture is not the stream's
                        await self._remember(playing)
                    playing = target
                if self.queue.shared is not None and self.store is self.queue.shared:  # the strip every process keeps
                    kept = await asyncio.to_thread(self.store.load_recent)
                    if kept is not None:
                        self.recent = deque((Recent(**r) for r in kept), maxlen=RECENT)
                self.refresh_state()
            await asyncio.sleep(TICK_S)

    async def _remember(self, ended: dict) -> None:
        frame = self.pipeline.shown.latest()
        if frame is None:
            return
        thumb = await asyncio.to_thread(thumbnail, frame.rgb)  # encoding stays off the event loop
        if self.clips is not None:
            self.clips.cut(ended["label"], ended.get("user"), ended["id"])
        if self.store is not None:  # kept before it is shown; a thumbnail is ~10 kB: written off the event loop too
            await asyncio.to_thread(self.store.add_recent, ended["id"], ended["label"], ended.get("user"), thumb)
        self.recent.appendleft(Recent(ended["id"], ended["label"], ended.get("user"), thumb))

    def clip_written(self, clip, ended_id: str) -> None:
        """From the clip writer's thread: link the clip from its dream in the recent strip."""
        def link() -> None:
            for r in self.recent:
                if r.id == ended_id:
                    r.clip = clip.to_json()["url"]
            self.refresh_state()
        if self.store is not None:
            self.store.set_clip(ended_id, clip.to_json()["url"])
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(link)

    def overlay(self) -> list[str]:
        """The overlay's lines for the frame being sent now (any thread: reads one tuple)."""
        state, taken = self._state
        return overlay_lines(state, self.about.ask, time.monotonic() - taken)

    # -- parts ----------------------------------------------------------------------------
    @property
    def workers(self) -> list:
        # the lease last: on a clean stop it is given back once nothing here pushes or publishes
        return self.pipeline.workers + [w for w in (self.encoder, self.webrtc, self.clips, self.publisher, self.lease)
                                        if w is not None]

    def start(self) -> None:
        self.pipeline.start()
        for worker in (self.encoder, self.webrtc, self.clips, self.publisher, self.lease):
            if worker is not None:
                worker.start()

    def stop_soon(self) -> None:
        """Tell every thread to stop and end every reader of the buses; returns at once."""
        for worker in self.workers:
            worker.stop_soon()
        for bus in self.pipeline.buses:
            bus.close()

    def stop(self, timeout: float = 5.0) -> list[str]:
        """Blocking (joins threads, all within `timeout`): run it off the event loop. Returns
        the names of the threads still running then (a frame or an ingest write that did not
        end in time; they are daemons, so the process still exits)."""
        self.stop_soon()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.stop(max(0.0, deadline - time.monotonic()))
        if self.queue.shared is not None:
            self.queue.shared.leave()
        if self.store is not None:
            self.store.close()
        return [w.name for w in self.workers if w.alive]

    def health(self) -> Health:
        health = self.pipeline.health()
        if self.encoder is not None:
            health.workers[self.encoder.name] = self.encoder.state
        shared = self.queue.shared
        if shared is not None:  # said, not failed: the picture flows, and every process would fail alike
            health.queue = "ok" if shared.available else "unavailable"
        if self.whep is not None:
            health.webrtc = {"peers": len(self.whep.peers), "dropped": self.whep.dropped}
        if self.lease is not None:
            health.lease = self.lease.said()
            if self.standing_by() and all(state == "running" for state in health.workers.values()):
                health.ok = health.flowing = True  # waiting, nothing to show: a standby's health, not a stall
        return health

    def standing_by(self) -> bool:
        """A dreamer waiting for another's lease (systemd: ready, with nothing shown)."""
        return self.lease is not None and self.lease.standing_by()

    def figures(self) -> dict:
        """What a front door shows of this dreamer (stream/relay): its reading's rates and work, health."""
        r = self.reading()
        return {"model": self.about.model, "device": self.about.device, "size": list(self.about.size),
                "fps": {part: round(rate, 2) for part, rate in r.fps.items()},
                "frames": r.frames, "steps": r.steps, "last_steps": r.steps_per_frame, "dream_errors": r.dream_errors,
                "frame_ms": {part: r.frame_ms[part] for part in ("dream", "presenter")},
                "health": self.health().to_json()}

    def watching(self) -> int:
        """People watching the picture here: MJPEG viewers and WebRTC peers."""
        return self.viewers["mjpeg"] + (len(self.whep.peers) if self.whep is not None else 0)

    def add_viewer(self, kind: str, delta: int) -> None:
        self.viewers[kind] += delta
        if kind == "mjpeg":
            self.pipeline.shown.encode = self.jpeg_wanted and self.viewers["mjpeg"] > 0
        self._viewers_changed = kind == "mjpeg" or self._viewers_changed  # the state shows MJPEG viewers

    def reading(self) -> Reading:
        engine, presenter, encoder = self.pipeline.engine, self.pipeline.presenter, self.encoder
        frame_ms = {"dream": engine.frame_ms, "presenter": presenter.frame_ms}
        if engine.carry_ms is not None:  # with a live source: the flow and the residual's carry, per dreamed frame
            frame_ms["dream_flow"] = engine.carry_ms
        if encoder is not None:
            frame_ms.update({f"encoder_{part}": ms for part, ms in encoder.frame_ms.items()})
        return Reading(frames=engine.frames, steps=engine.steps, dream_errors=engine.frame_errors,
                       fps={"dream": engine.rate, "output": presenter.rate},
                       viewers=dict(self.viewers), restarts={w.name: w.restarts for w in self.workers},
                       encoder_restarts=encoder.restarts if encoder else 0,
                       encoder_bitrate_kbps=encoder.bitrate_kbps if encoder else 0.0,
                       encoder_frames=encoder.frames_sent if encoder else 0,
                       encoder_pictures=encoder.pictures_sent if encoder else 0,
                       steps_per_frame=engine.last_steps, frame_ms={k: round(v, 2) for k, v in frame_ms.items()},
                       chat_connected=self.chat is not None and self.chat.connected.is_set(),
                       webrtc_frames=self.webrtc.frames if self.webrtc else 0,
                       webrtc_bytes=self.webrtc.bytes if self.webrtc else 0)


def error(code: str, message: str, suggestions: list[str] | None = None) -> dict:
    """The contract's error message, as HTTP, websocket and chat send it."""
    return {"type": "error", "code": code, "message": message, "suggestions": suggestions or []}


def error_json(e: RequestError) -> dict:
    return error(e.code, e.message, e.suggestions)
