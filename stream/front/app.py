"""The aiohttp app factory: routes, and the long-lived work started and stopped with the app.

    app = make_app(service, cfg.serve)   # tests build the same app on free ports
    runner.run(app, http_socket)           # the command: until SIGTERM or SIGINT

Long-lived pieces live in `cleanup_ctx`: the dream and presenter threads (and the RTMP
encoder), the websocket server, the state watcher, the chat reader and the systemd
notifications start before the first request. On shutdown every part is told at once, the
moment the signal arrives, and each close has its own bound (stream/front/runner.py), so Ctrl-C
and SIGTERM end everything within SHUTDOWN_S however many viewers are attached. The chat
reader runs supervised like every thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dreamer.classes import (
    MAX_TEXT,
    RequestError,
    catalogue,
    normalize,
    parse,
    suggest,
    twins,
)
from dreamer.runtime import give_back_freed_memory, lower_this_thread

from ..config import ServeSettings
from ..core.framebus import encode_jpeg
from ..core.sanitize import clean
from ..core.worker import supervise
from ..notify import Notifier, tell_systemd
from ..outputs import mjpeg
from ..resources import folder
from . import whep as whep_module
from .metrics import CONTENT_TYPE
from .origins import client_address, origin_allowed
from .runner import CLOSING, SHUTDOWN_S, Closing
from .service import Service, error, error_json
from .ws import WebsocketServer

log = logging.getLogger(__name__)

WEB_DIR = folder("web")
SERVICE = web.AppKey("service", Service)
SERVE = web.AppKey("serve", ServeSettings)
WS_SOCKET = web.AppKey("ws_socket", socket.socket)  # the websocket port, bound before the model loads
NOTIFIER = web.AppKey("notifier", Notifier)
MAX_BODY = 4096
# a refused request's HTTP status: too fast (429), a shared queue lost (503), else a bad request
STATUS = {"rate_limited": 429, "unavailable": 503}
GIVE_BACK_EVERY_S = 60.0


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html")


async def view(request: web.Request) -> web.FileResponse:
    """The picture alone, filling any window (an OBS Browser Source); ?overlay=1, ?fit=cover."""
    return web.FileResponse(WEB_DIR / "view.html")


async def stream_mjpg(request: web.Request) -> web.StreamResponse:
    return await mjpeg.stream(request, request.app[SERVICE], request.app[SERVE])


async def frame_jpg(request: web.Request) -> web.Response:
    shown = request.app[SERVICE].pipeline.shown
    frame = shown.latest()
    if frame is None:
        return web.json_response(error("not_ready", "no frame yet; the dream is starting"), status=503)
    jpeg = shown.jpeg(frame) if frame.encoded else await asyncio.to_thread(shown.jpeg, frame)  # off the loop
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def whep_offer(request: web.Request) -> web.Response:
    """WHEP: an SDP offer in, 201 with the answer and the peer's Location (stream/front/whep.py)."""
    whep = request.app[SERVICE].whep
    if whep is None:
        return web.Response(status=404, text="WebRTC is off here ([webrtc] enabled = false): watch /stream.mjpg\n",
                            headers=whep_module.CORS)
    try:
        sdp = await whep_module.read_offer(request, request.app[SERVE].client_timeout_s)
        answer, peer = await whep.offer(sdp, viewer(request))
    except whep_module.OfferRefused as e:
        return refused(e)
    return answered(answer, f"/whep/{peer}")


def answered(answer: str, location: str) -> web.Response:
    """201: an offer answered (WHEP or WHIP), the peer's resource to DELETE in Location."""
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers={**whep_module.CORS, "Location": location})


def refused(e: whep_module.OfferRefused) -> web.Response:
    """An offer or a DELETE refused: the reason, and what a 401 or 429 owes the client."""
    bearer = {"WWW-Authenticate": 'Bearer realm="dreamstream"'} if e.status == 401 else {}
    later = {"Retry-After": str(e.retry_after_s)} if e.retry_after_s is not None else {}
    return web.Response(status=e.status, text=e.message + "\n", headers={**whep_module.CORS, **bearer, **later})


async def whep_delete(request: web.Request) -> web.Response:
    whep = request.app[SERVICE].whep
    closed = whep is not None and await whep.close(request.match_info["peer"])
    return web.Response(status=200 if closed else 404, headers=whep_module.CORS)


async def preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=whep_module.CORS)


async def whip_offer(request: web.Request) -> web.Response:
    """WHIP: a publisher's SDP offer in, 201 with the answer and its Location (stream/front/whip.py)."""
    whip = request.app[SERVICE].whip
    try:
        whip.authorize(request.headers.get("Authorization"), viewer(request))
        sdp = await whep_module.read_offer(request, request.app[SERVE].client_timeout_s)
        answer, peer = await whip.offer(sdp, viewer(request))
    except whep_module.OfferRefused as e:
        return refused(e)
    return answered(answer, f"/whip/{peer}")


async def whip_delete(request: web.Request) -> web.Response:
    whip = request.app[SERVICE].whip
    try:
        whip.authorize(request.headers.get("Authorization"), viewer(request))
    except whep_module.OfferRefused as e:
        return refused(e)
    closed = await whip.close(request.match_info["peer"], "it said it was done (DELETE)")
    return web.Response(status=200 if closed else 404, headers=whep_module.CORS)


async def preview_jpg(request: web.Request) -> web.Response:
    """Exactly what goes to the RTMP ingest, overlay included."""
    encoder = request.app[SERVICE].encoder
    if encoder is None:
        return web.json_response(error("not_streaming", "no RTMP output: start with --rtmp URL or --twitch"),
                                 status=404)
    rgb = encoder.preview
    if rgb is None:
        return web.json_response(error("not_ready", "nothing sent to the ingest yet"), status=503)
    jpeg = await asyncio.to_thread(encode_jpeg, rgb, 90)  # off the event loop
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def recent_jpg(request: web.Request) -> web.Response:
    wanted = request.match_info["id"]
    for r in request.app[SERVICE].recent:
        if r.id == wanted:
            return web.Response(body=r.jpeg, content_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
    raise web.HTTPNotFound(text="no such recent dream\n")


async def clip_mp4(request: web.Request) -> web.StreamResponse:
    clips = request.app[SERVICE].clips
    path = clips.folder.path(request.match_info["name"]) if clips is not None else None
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="no such clip\n")
    return web.FileResponse(path, headers={"Cache-Control": "max-age=86400"})  # ranges too: players seek


async def api_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].state())


def viewer(request: web.Request) -> str:
    return client_address(request.remote, request.headers.get("X-Forwarded-For"), request.app[SERVE].trusted_proxies)


async def api_classes(request: web.Request) -> web.Response:
    try:
        await request.app[SERVICE].attempt(viewer(request))  # lookups share the request budget
    except RequestError as e:
        return web.json_response(error_json(e), status=STATUS[e.code])
    if request.query.get("all"):  # the page's browsable list
        cat = catalogue()  # twins qualified, so a click asks for the one clicked
        return web.json_response({"classes": [cat.display_name(i) for i in range(len(cat.names))]})
    q = clean(request.query.get("q", ""))[:MAX_TEXT]
    if not q.strip():
        return web.json_response({"query": q, "matches": [], "suggestions": suggest("", 10)})
    try:
        target = parse(q)
    except RequestError as e:
        return web.json_response({"query": q, "matches": [], "error": e.code, "message": e.message,
                                  "suggestions": e.suggestions})
    # suggestions are whole requests, as they can be asked for: the other class of a shared
    # name first, then ways to finish the last part ("pizz" -> "pizza"); never the text itself
    last = q.rpartition("+")[2]
    prefix = "".join(f"{label} + " for label, _ in target.parts[:-1])  # the parts before, as understood
    finished = list(dict.fromkeys(twins(q) + [prefix + s for s in suggest(last, 8)]))
    return web.json_response({"query": q, "target": target.to_json(),
                              "matches": [{"index": c.index, "name": c.name, "weight": round(c.weight, 4),
                                           "score": round(c.weight, 4)}  # "score": the old name, kept
                                          for c in target.classes],
                              "suggestions": [s for s in finished if normalize(s) != normalize(q)]})


async def api_request(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if not origin_allowed(request.headers.get("Origin"), request.host, request.app[SERVE]):
        return web.json_response(error("forbidden", "requests from other web pages are not accepted"), status=403)
    if request.content_type != "application/json":  # a cross-site form or text/plain POST: refused
        return web.json_response(error("bad_request", "send Content-Type: application/json"), status=415)
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response(error("too_long", f"body over {MAX_BODY} bytes"), status=400)
    try:
        body = json.loads(await asyncio.wait_for(request.read(), request.app[SERVE].client_timeout_s))
    except (ValueError, RecursionError, web.HTTPRequestEntityTooLarge):  # RecursionError: [[[[... 1000 deep
        return web.json_response(error("bad_request", 'expected JSON: {"text": "volcano", "user": "me"}'),
                                 status=400)
    except asyncio.TimeoutError:  # a body that trickles in (or never comes)
        late = web.json_response(error("timeout", "the request body did not arrive in time"), status=408)
        late.force_close()  # and the connection ends with it
        return late
    if not isinstance(body, dict):
        return web.json_response(error("bad_request", "expected a JSON object"), status=400)
    try:
        ack = await service.request(body.get("text"), body.get("user"), viewer(request))
    except RequestError as e:
        return web.json_response(error_json(e), status=STATUS.get(e.code, 400))
    return web.json_response(ack.to_json())


async def healthz(request: web.Request) -> web.Response:
    """200 while dreamed and shown frames both flow; 503 (with which one stalled) otherwise."""
    health = request.app[SERVICE].health()
    return web.json_response(health.to_json(), status=200 if health.ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVICE].metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def config_json(request: web.Request) -> web.Response:
    about, s = request.app[SERVICE].about, request.app[SERVE]
    return web.json_response({"ws_port": s.ws_port, "ws_path": "/",
                              "ws_url": f"ws://{request.url.host}:{s.ws_port}/",
                              "size": list(about.size), "model": about.model,
                              "ask": about.ask,  # how /view?overlay=1 says to ask, as the RTMP overlay does
                              "webrtc": request.app[SERVICE].whep is not None})  # the page may play over /whep


async def _lifecycle(app: web.Application):
    service, s, closing, notifier = app[SERVICE], app[SERVE], app[CLOSING], app[NOTIFIER]
    # Bind the websocket port (if the command has not yet) before starting the dream thread:
    # a port in use must fail cleanly with no thread left running. Not `async with`: its exit
    # waits for every client without a bound.
    server = await WebsocketServer(service, s).serve(s.host, s.ws_port, app.get(WS_SOCKET)) \
        if s.serves_viewers else None
    closing.ws_server = server
    try:
        service.start()
        # The dream and presenter threads started at normal priority; this thread, which
        # serves every viewer, steps back so an audience can never take the dream's CPU.
        lower_this_thread(s.web_nice)
        service.refresh_state()
        tasks = [asyncio.create_task(service.watch_state(), name="state-watcher"),
                 # the watchdog pings while frames flow: a live source that is down is not the
                 # process's fault, and a restart would not bring it back
                 asyncio.create_task(tell_systemd(notifier, service.pipeline.shown,
                                                  lambda: service.health().flowing, f"dreaming on port {s.port}",
                                                  standing_by=service.standing_by),
                                     name="systemd-notify")]
        tasks.append(asyncio.create_task(give_back_memory(), name="memory"))
        if service.chat is not None:
            tasks.append(asyncio.create_task(supervise("chat", service.chat.session, service.chat.backoff,
                                                       service.chat.failures), name="chat-reader"))
        closing.tasks = tasks
        yield
    finally:
        if closing.started is None:  # stopped without a signal (a failed start)
            await _closing(app)
        closing.done("viewers")  # aiohttp has ended (or cancelled) every HTTP handler by now
        if closing.tasks:
            await asyncio.wait(closing.tasks, timeout=closing.left())
        try:
            if server is not None:
                await asyncio.wait_for(server.wait_closed(), max(closing.left(), 0.01))
        except asyncio.TimeoutError:
            log.warning("websocket clients still closing after %.1f s; dropped", SHUTDOWN_S)
        closing.done("websockets")
        running = await asyncio.to_thread(service.stop, closing.left())
        closing.done("threads")
        notifier.close()
        log.info("stopped in %.2f s (%s)%s", time.monotonic() - closing.started,
                 ", ".join(f"{part} {t:.2f} s" for part, t in closing.took.items()),
                 f"; {', '.join(running)} still busy, left to the exit" if running else "")


async def give_back_memory(every_s: float = GIVE_BACK_EVERY_S) -> None:
    """Freed pages back to the kernel now and then, in a worker thread: a long run keeps less
    memory resident (dreamer/runtime.py, give_back_freed_memory, says why and how much)."""
    while True:
        await asyncio.sleep(every_s)
        if not await asyncio.to_thread(give_back_freed_memory):
            return  # not glibc: there is nothing to give back this way


def _tell_threads(app: web.Application) -> None:
    """The thread-safe half of stopping, from any thread (the signal handler's): the dream
    gives its cores back at once, every bus closes (so every MJPEG loop ends), systemd hears
    STOPPING. Waits for nothing."""
    closing = app[CLOSING]
    if closing.started is None:
        closing.started = time.monotonic()
        app[NOTIFIER].stopping()
        app[SERVICE].stop_soon()


async def _closing(app: web.Application) -> None:
    """aiohttp's on_shutdown, the event loop's half: "going away" to every websocket client
    (their handshakes run in parallel with aiohttp's wait for its handlers), the tasks
    cancelled, the MJPEG and WebRTC viewers dropped."""
    _tell_threads(app)
    closing = app[CLOSING]
    if closing.ws_server is not None:
        closing.ws_server.close(close_connections=True)
    for task in closing.tasks:
        task.cancel()
    mjpeg.drop_all(app[SERVICE].mjpeg_transports)
    peers = [p.close_all() for p in (app[SERVICE].whep, app[SERVICE].whip) if p is not None]
    if peers:  # WebRTC viewers and the WHIP publisher: closed together, in the shutdown's time
        try:
            results = await asyncio.wait_for(asyncio.gather(*peers, return_exceptions=True), max(closing.left(), 0.01))
        except asyncio.TimeoutError:
            log.warning("webrtc: peers still closing at the end of the shutdown's time")
        else:
            for failed in (r for r in results if isinstance(r, Exception)):
                log.warning("webrtc: closing a peer failed: %s: %s", type(failed).__name__, failed)


class ClientNoise(logging.Filter):
    """aiohttp logs a malformed request or a vanished client as an ERROR with a traceback;
    those are the client's doing, not ours: dropped. Errors in our own handlers still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (HttpProcessingError, ConnectionError, asyncio.CancelledError))


CLIENT_NOISE = ClientNoise()  # one instance: addFilter keeps it once however many apps are made


def add_offer_routes(app: web.Application, path: str, offer, delete) -> None:
    """WHEP's and WHIP's: POST the offer to `path`, DELETE the peer at `path`/{peer}, CORS preflights."""
    app.router.add_post(path, offer)
    app.router.add_route("OPTIONS", path, preflight)
    app.router.add_delete(path + "/{peer}", delete)
    app.router.add_route("OPTIONS", path + "/{peer}", preflight)


def make_app(service: Service, serve: ServeSettings, ws_socket: socket.socket | None = None,
             notifier: Notifier | None = None) -> web.Application:
    """`notifier`: tells systemd when the stream is ready, healthy and stopping (none: silent)."""
    logging.getLogger("aiohttp.server").addFilter(CLIENT_NOISE)
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICE], app[SERVE], app[NOTIFIER] = service, serve, notifier or Notifier()
    app[CLOSING] = Closing(lambda: _tell_threads(app))
    if ws_socket is not None:
        app[WS_SOCKET] = ws_socket
    if serve.serves_viewers:  # a dreamer's are its front doors'
        app.router.add_get("/", index)
        app.router.add_get("/view", view)
        app.router.add_get("/stream.mjpg", stream_mjpg)
        add_offer_routes(app, "/whep", whep_offer, whep_delete)
        app.router.add_get("/api/classes", api_classes)
        app.router.add_post("/api/request", api_request)
        app.router.add_static("/static/", WEB_DIR)
    if service.whip is not None:  # the live source from a WHIP publisher (OBS): at the process that dreams
        add_offer_routes(app, "/whip", whip_offer, whip_delete)
    app.router.add_get("/frame.jpg", frame_jpg)
    app.router.add_get("/preview.jpg", preview_jpg)
    app.router.add_get("/recent/{id}.jpg", recent_jpg)
    app.router.add_get("/clips/{name}", clip_mp4)
    app.router.add_get("/api/state", api_state)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/config.json", config_json)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_closing)
    return app
