"""The systemd notify protocol against real AF_UNIX datagram sockets that the tests bind."""
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.config import systemd_notify
from stream.core.framebus import FrameBus
from stream.notify import Notifier, tell_systemd


@pytest.fixture
def listener(tmp_path):
    """(address, socket): what systemd binds, as a path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def received(sock) -> list[str]:
    """Every datagram waiting now, without blocking."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(5)


def test_ready_watchdog_and_stopping_are_datagrams_of_key_value_lines(listener):
    path, sock = listener
    n = Notifier(path)
    assert n.ready("dreaming") and n.watchdog() and n.stopping()
    assert [sock.recv(4096).decode() for _ in range(3)] == ["READY=1\nSTATUS=dreaming", "WATCHDOG=1",
                                                           "STOPPING=1\nSTATUS=stopping"]
    n.close()


def test_an_abstract_address_starts_with_a_nul_byte():
    name = f"dreamstream-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        assert Notifier("@" + name).ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(tmp_path):
    assert not Notifier().active and not Notifier().ready() and not Notifier().stopping()
    gone = Notifier(str(tmp_path / "nobody-listens"))  # systemd went away: dropped, not raised
    assert gone.active and not gone.watchdog()


def test_environment_gives_the_socket_and_a_watchdog_meant_for_this_process(monkeypatch):
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)
    assert systemd_notify() == (None, None)
    monkeypatch.setenv("NOTIFY_SOCKET", "@sd")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd_notify() == ("@sd", 30_000_000)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd_notify() == ("@sd", 30_000_000)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # a watchdog for our parent, not us
    assert systemd_notify() == ("@sd", None)
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    assert systemd_notify() == ("@sd", None)


def test_ready_after_the_first_frame_then_pings_only_while_healthy(listener):
    path, sock = listener
    notifier = Notifier(path, watchdog_usec=40_000)  # a ping every 20 ms while healthy
    bus, health = FrameBus(encode=False), {"ok": False}

    async def run():
        task = asyncio.create_task(tell_systemd(notifier, bus, lambda: health["ok"], "up"))
        await asyncio.sleep(0.1)
        assert received(sock) == []  # no frame yet: not ready, no pings
        bus.publish(np.zeros((4, 4, 3), np.uint8))
        await asyncio.sleep(0.15)
        assert received(sock) == ["READY=1\nSTATUS=up"]  # ready, but unhealthy: still no ping
        health["ok"] = True
        await asyncio.sleep(0.15)
        pings = received(sock)
        assert pings and set(pings) == {"WATCHDOG=1"}
        health["ok"] = False
        await asyncio.sleep(0.05)
        received(sock)  # a ping already on its way when health turned
        await asyncio.sleep(0.15)
        assert received(sock) == []
        task.cancel()

    asyncio.run(run())
    notifier.close()


def test_a_standby_dreamer_is_ready_without_a_frame(listener):
    path, sock = listener
    notifier = Notifier(path)
    standby = {"now": False}

    async def run():
        task = asyncio.create_task(tell_systemd(notifier, FrameBus(encode=False), lambda: True, "standby",
                                                standing_by=lambda: standby["now"]))
        await asyncio.sleep(0.1)
        assert received(sock) == []  # not yet said: the lease is being asked for
        standby["now"] = True
        await asyncio.wait_for(task, 2.0)
        assert received(sock) == ["READY=1\nSTATUS=standby"]

    asyncio.run(run())
    notifier.close()


UNITS = Path(__file__).parents[1] / "scripts" / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("name", ["dreamstream.service", "dreamstream-dreamer.service", "dreamstream-front.service"])
def test_the_shipped_units_are_valid_and_ask_for_notify_a_watchdog_and_restarts(tmp_path, name):
    text = (UNITS / name).read_text()
    for line in ("Type=notify", "Restart=on-failure", "EnvironmentFile=/etc/dreamstream.env"):
        assert f"\n{line}\n" in text
    assert int(re.search(r"\nWatchdogSec=(\d+)\n", text).group(1)) > 5  # more than the 5 s shown-frame stall
    # systemd's own parser, with the command pointed at this checkout's (it must exist)
    unit = tmp_path / name
    ours = Path(sys.executable).with_name("dreamstream")
    unit.write_text(text.replace("/opt/dreamstream/.venv/bin/dreamstream", str(ours)))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
