"""Running the app: the event loop in a thread of its own, signals on the main thread, and a
shutdown that ends within SHUTDOWN_S whatever is attached.

    run(make_app(service, settings), http_socket)   # until SIGTERM or SIGINT

The main thread stays at normal priority and only waits for signals; the "web" thread runs
the event loop (and lowers its own priority: it serves the viewers, who must not take the
dream's cores). At a signal the main thread tells every part to stop at once (`Closing.tell`:
threads, buses, systemd), the loop closes its own parts in parallel, each within its bound,
and whatever has not ended by SHUTDOWN_S + EXIT_GRACE_S is left to the process's exit.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

# Shutdown, bounded whatever is attached: every part is told at the signal (the main thread
# tells the threads, app._closing the event loop's parts) and all close in parallel, each within
# its own bound; what has not ended by SHUTDOWN_S is left behind (daemon threads, dropped
# sockets) and the process exits anyway. Measured on the old path (SIGTERM under 200
# viewers, 50 stalled and 120 websockets, 20 of which never answer, 2 cores): 7-17 s, of
# which 0.8-1.4 s for the niced event loop to notice the signal (see WebThread), 2 s of
# websocket close handshakes, up to 1 s for a 1280x720 frame to stop, and the rest in
# Python's own teardown (see cli.exit_now).
HTTP_CLOSE_S = 0.5  # aiohttp's shutdown_timeout: a handler still running then is cancelled
# websockets: ws.CLOSE_TIMEOUT_S (0.5 s) for each client to answer "going away", all at once
SHUTDOWN_S = 1.2  # chat, the dream, the presenter and the encoder must have ended by then
EXIT_GRACE_S = 0.2  # then the main thread waits this much more for the loop, and the process exits


class Closing:
    """Where shutdown stands: it starts at the signal (`tell`), and each part's time goes in
    one line at the end."""

    def __init__(self, tell: Callable[[], None]):
        self.tell = tell  # the thread-safe half of stopping: callable from any thread, once or more
        self.started: float | None = None
        self.ws_server = None  # the websocket server, closed at the signal
        self.tasks: list[asyncio.Task] = []  # state watcher, chat reader, notify: cancelled at the signal
        self.took: dict[str, float] = {}

    def left(self) -> float:
        return max(0.0, self.started + SHUTDOWN_S - time.monotonic())

    def done(self, part: str) -> None:
        self.took[part] = time.monotonic() - self.started


CLOSING = web.AppKey("closing", Closing)


class WebThread(threading.Thread):
    """The event loop that serves every viewer, in a thread of its own ("web", niced by the
    app's lifecycle), so that the main thread, left at normal priority, answers signals at
    once: a niced loop beside a dream that takes every core took 0.8-1.4 s just to notice a
    SIGTERM (measured under the shutdown check's load)."""

    def __init__(self, app: web.Application, sock: socket.socket, **runner_kwargs):
        super().__init__(name="web", daemon=True)
        self.app, self.sock, self.kwargs = app, sock, runner_kwargs
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self._stopped = asyncio.Event()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which reports it
            self.error = e
        finally:
            left = asyncio.all_tasks(self.loop)  # a close that outlived its bound: cancelled, not awaited again
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.wait(left, timeout=0.1))
            self.loop.close()

    async def _serve(self) -> None:
        runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=HTTP_CLOSE_S, **self.kwargs)
        await runner.setup()
        try:
            await web.SockSite(runner, self.sock).start()
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def stop_soon(self) -> None:
        """From any thread: the threads are told now, the loop closes the rest."""
        self.app[CLOSING].tell()
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopped.set)


def run(app: web.Application, sock: socket.socket, **runner_kwargs) -> None:
    """Serve `app` on `sock` until SIGTERM or SIGINT, then stop within SHUTDOWN_S: the parts
    that have not ended by then are left to the process's exit. Call from the main thread."""
    web_thread = WebThread(app, sock, **runner_kwargs)
    signalled: list[float] = []

    def on_signal(signum, frame) -> None:
        if not signalled:
            signalled.append(time.monotonic())
            web_thread.stop_soon()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    web_thread.start()
    while web_thread.is_alive():
        # bounded waits: a signal delivered to another thread still runs its handler here soon
        web_thread.join(0.2)
        if signalled and time.monotonic() > signalled[0] + SHUTDOWN_S + EXIT_GRACE_S:
            log.warning("still closing %.1f s after the signal; exiting anyway", SHUTDOWN_S + EXIT_GRACE_S)
            return
    if web_thread.error is not None:
        raise web_thread.error
