"""The systemd notify protocol (sd_notify(3)), written out: datagrams to $NOTIFY_SOCKET.

    notifier = Notifier(*systemd_notify())   # stream.config reads NOTIFY_SOCKET, WATCHDOG_USEC
    await tell_systemd(notifier, pipeline.shown, lambda: service.health().flowing)   # READY, then WATCHDOG
    notifier.stopping()     # STOPPING=1, the moment shutdown starts

Without NOTIFY_SOCKET (not under systemd with Type=notify) every call does nothing. An
address that starts with '@' is in the abstract namespace (a leading NUL byte). A datagram
that cannot be sent is dropped with one debug line: the stream never waits for its manager.
`tell_systemd` is the running service's side: READY once the first frame is shown, then a
watchdog ping every half of WATCHDOG_USEC (what systemd asks for) while the stream is
healthy and none while it is not, so a stream that stays stuck for WatchdogSec is
restarted by its manager.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from .core.framebus import BusClosed, FrameBus

log = logging.getLogger(__name__)


def unix_address(address: str) -> str | bytes:
    """NOTIFY_SOCKET -> what socket.sendto wants: '@name' is abstract (b'\\0name')."""
    return b"\0" + address[1:].encode() if address.startswith("@") else address


class Notifier:
    def __init__(self, address: str | None = None, watchdog_usec: int | None = None):
        self.address = unix_address(address) if address else None
        self.watchdog_s = watchdog_usec / 1e6 if watchdog_usec else None  # None: no watchdog asked for
        self._sock: socket.socket | None = None

    @property
    def active(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of KEY=VALUE lines; False when there is nobody to tell or it failed."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full manager queue drops the datagram, never blocks us
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as e:
            log.debug("notify: %s not sent: %s", fields[0], e)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def tell_systemd(notifier: Notifier, shown: FrameBus, healthy: Callable[[], bool], status: str = "",
                       standing_by: Callable[[], bool] = lambda: False) -> None:
    """READY=1 once the first frame is on `shown` (or `standing_by()`: a standby dreamer, which
    shows nothing until it takes over), then (when systemd asked for a watchdog) WATCHDOG=1
    every half interval while `healthy()`, none while it is not. Cancel to stop. Without
    NOTIFY_SOCKET it returns at once."""
    if not notifier.active:
        return
    first = asyncio.ensure_future(shown.next(0))
    try:
        while not first.done() and not standing_by():
            await asyncio.wait({first}, timeout=0.25)
        if first.done():
            first.result()
    except BusClosed:  # stopped before the first frame
        return
    finally:
        first.cancel()
    notifier.ready(status)
    if notifier.watchdog_s is None:
        return
    sick = False
    while True:
        if healthy():
            if sick:
                log.info("notify: healthy again; watchdog pings resume")
                sick = False
            notifier.watchdog()
        elif not sick:
            log.warning("notify: the stream is not healthy; watchdog pings stop until it is")
            sick = True
        await asyncio.sleep(notifier.watchdog_s / 2)
