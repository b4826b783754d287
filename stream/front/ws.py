"""The websocket server (the `websockets` library) on its own port.

Client -> server: {"type": "request", "text": ..., "user": ...} and {"type": "ping"}.
Server -> client: ack / error (same JSON as POST /api/request) and state pushes. Messages
over 4 KiB close the connection (1009), and so does a flood of messages (1008: more than
20 at once or 5 a second for long); browsers from other origins are refused (403);
each IP may hold `max_ws_per_ip` connections (429). Each client has its own sender that
sends only the newest state, so a slow client skips states and never holds up the others.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import Counter

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from dreamer.classes import RequestError

from ..config import ServeSettings
from ..core.token_bucket import TokenBucket
from .origins import client_address, origin_allowed
from .service import STATE_EVERY_S, Service, error, error_json

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096
# A client has this long to answer a close ("going away" at shutdown, 1008 for a flood) before
# its connection is cut: an RTT or two over the internet; a frozen tab never answers (it
# held shutdown for websockets' default 2 s before).
CLOSE_TIMEOUT_S = 0.5
FLOOD_RATE, FLOOD_BURST = 5.0, 20  # messages a second (and at once) before a connection is closed (1008)


async def answer(service: Service, raw, ip: str) -> dict | None:
    """One client message -> the reply (None for nothing to say)."""
    if not isinstance(raw, str):
        return error("bad_request", "send JSON text frames, not binary")
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: [[[[... nested 1000 deep
        return error("bad_request", "not valid JSON")
    if not isinstance(msg, dict):
        return error("bad_request", "expected a JSON object with a 'type'")
    kind = msg.get("type")
    if kind == "ping":
        return {"type": "pong"}
    if kind == "request":
        try:
            return (await service.request(msg.get("text"), msg.get("user"), ip)).to_json()
        except RequestError as e:
            return error_json(e)
    return error("bad_request", f"unknown message type {kind!r}; use 'request' or 'ping'")


class WebsocketServer:
    def __init__(self, service: Service, settings: ServeSettings):
        self.service, self.s = service, settings
        self.per_ip: Counter[str] = Counter()

    def _address(self, conn: ServerConnection) -> str:
        return client_address(conn.remote_address[0], conn.request.headers.get("X-Forwarded-For"),
                              self.s.trusted_proxies)

    def _gate(self, conn: ServerConnection, request):
        ip = self._address(conn)
        if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host", ""), self.s):
            return conn.respond(403, "this page may not connect: its origin is not allowed\n")
        if self.per_ip[ip] >= self.s.max_ws_per_ip:
            return conn.respond(429, "too many connections from your address\n")
        return None

    async def _send_states(self, conn: ServerConnection) -> None:
        seen = -1
        try:
            while True:
                await self.service.state_changed(seen, STATE_EVERY_S)
                seen = self.service.state_version
                await conn.send(self.service.state_json)
        except ConnectionClosed:
            pass

    async def handle(self, conn: ServerConnection) -> None:
        ip = self._address(conn)
        self.per_ip[ip] += 1
        self.service.add_viewer("websocket", +1)
        sender = asyncio.create_task(self._send_states(conn), name="ws-state-sender")
        budget = TokenBucket(FLOOD_RATE, FLOOD_BURST, time.monotonic())
        try:
            async for raw in conn:
                if budget.take(time.monotonic()):  # a flood: the connection costs more than it is worth
                    await conn.close(1008, "too many messages; at most a few a second")
                    break
                reply = await answer(self.service, raw, ip)
                if reply is not None:
                    await conn.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]
            self.service.add_viewer("websocket", -1)

    def serve(self, host: str, port: int, sock: socket.socket | None = None):
        """An async context manager: the listening server (on `sock` when it is already bound)."""
        where = {"sock": sock} if sock is not None else {"host": host, "port": port}
        return serve(self.handle, **where, process_request=self._gate, max_size=MAX_MESSAGE, max_queue=4,
                     ping_interval=20, ping_timeout=20, close_timeout=CLOSE_TIMEOUT_S)
