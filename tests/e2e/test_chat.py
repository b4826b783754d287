"""Chat end to end: a real IRC server (Debian's ngircd on its own config, scripts/peers.py) on
loopback, a real IRC client saying !dream."""
import os
import socket
import time

import pytest
from peers import NGIRCD, start_ngircd

from .conftest import TEST_CONFIG, free_port, start_server, stop_server

if NGIRCD is None and not os.environ.get("CI"):
    pytest.skip("needs Debian ngircd (make test installs it as root)", allow_module_level=True)


def say(port, nick, *lines: bytes):
    """A plain IRC client: register, wait for the welcome and the join, say the lines, quit."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(20)
    f = s.makefile("rb")
    s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    for want in (b" 001 ", b" JOIN "):
        while want not in (line := f.readline()):
            assert line, f"ngircd closed the connection before {want!r}"
            if line.startswith(b"PING"):
                s.sendall(b"PONG" + line[4:])
        if want == b" 001 ":
            s.sendall(b"JOIN #dream\r\n")
    for line in lines:
        s.sendall(b"PRIVMSG #dream :" + line + b"\r\n")
        time.sleep(0.1)
    time.sleep(0.5)
    s.sendall(b"QUIT :bye\r\n")
    s.close()


def labels(server):
    state = server.get_json("/api/state")
    return {state["target"]["label"]: state["target"].get("user"), **{q["label"]: q["user"] for q in state["queue"]}}


def wait_until(cond, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.3)
    return False


def test_dream_from_irc_chat_survives_garbage_and_a_dropped_connection(tmp_path):
    port = free_port()
    ircd = start_ngircd(tmp_path, port)
    server = start_server(tmp_path, extra=["--chat", f"irc://127.0.0.1:{port}", "--channel", "dream"])
    try:
        assert wait_until(lambda: "chat: reading #dream" in server.log.read_text())
        assert server.get_json("/config.json")["ask"] == "type !dream <class> in chat"  # what /view?overlay=1 shows
        say(port, "viewer1", b"!dream pizza")
        assert wait_until(lambda: labels(server).get("pizza") == "viewer1"), labels(server)

        zalgo = "!dream ".encode() + "z\u0336\u0337\u0338".encode() * 30
        say(port, "viewer2", b"!dream \xff\xfe\x01\x02 binary", zalgo, b"!dream " + b"x" * 400, b"hello everyone",
            b"!dream qqxxzz", b"!dream", b"!dreamer pizza")
        time.sleep(1)
        assert "viewer2 asked" not in server.log.read_text()  # nothing of that was a request
        assert server.get_json("/api/state")["queue"] == []
        time.sleep(0.6)
        say(port, "viewer3", b"!dream jellyfish")
        assert wait_until(lambda: "jellyfish" in labels(server)), labels(server)

        ircd.terminate()  # the chat server goes away...
        ircd.wait(5)
        assert wait_until(lambda: "chat:" in server.log.read_text().split("viewer3 asked")[-1])
        assert server.get_json("/healthz")["ok"]
        ircd = start_ngircd(tmp_path, port)  # ...and comes back: the reader rejoins by itself
        assert wait_until(lambda: server.log.read_text().count("chat: reading #dream") >= 2, 60)
        say(port, "viewer4", b"!dream daisy")
        assert wait_until(lambda: "daisy" in labels(server)), labels(server)
    finally:
        rc, took = stop_server(server)
        ircd.terminate()
        ircd.wait(5)
    assert rc == 0 and took < 5
    log = server.log.read_text()
    assert "Traceback" not in log


class Client:
    """A plain IRC client that stays: joins first (a stock server makes the channel's first
    member its operator), says things and reads what comes back."""

    def __init__(self, port: int, nick: str):
        self.nick, self.sock = nick, socket.create_connection(("127.0.0.1", port), 5)
        self.sock.settimeout(30)
        self.file = self.sock.makefile("rb")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        self.expect(b" 001 ")
        self.send("JOIN #dream")
        self.expect(b" JOIN ")

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def expect(self, needle: bytes, timeout: float = 30) -> bytes:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.file.readline()
            assert line, f"connection closed waiting for {needle!r}"
            if line.startswith(b"PING"):
                self.send("PONG" + line[4:].decode().rstrip())
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} within {timeout} s")

    def ask(self, text: str, reply: bytes) -> bytes:
        self.send(f"PRIVMSG #dream :{text}")
        return self.expect(reply)

    def close(self) -> None:
        self.send("QUIT :bye")
        self.sock.close()


def test_chat_commands_on_a_stock_server(tmp_path):
    port = free_port()
    ircd = start_ngircd(tmp_path, port)
    mod = Client(port, "mod")  # first in the channel: its operator
    config = TEST_CONFIG.replace("hold_s = 4.0", "hold_s = 60.0") + '[chat]\nnick = "dreambot"\nreply_every_s = 0.0\n'
    server = start_server(tmp_path, config, ["--chat", f"irc://127.0.0.1:{port}", "--channel", "dream"])
    viewer = None
    try:
        mod.expect(b"dreambot", 30)  # the reader joined (its JOIN echo)
        viewer = Client(port, "viewer")
        assert b"type !dream <class>" in mod.ask("!dream", b"@mod ")
        assert b"!queue shows" in mod.ask("!help", b"@mod ")
        assert b"dreaming pizza now" in mod.ask("!dream pizza", b"@mod ")
        time.sleep(0.6)
        assert b"#1 in the queue" in viewer.ask("!dream daisy", b"@viewer ")
        assert b"next: daisy" in viewer.ask("!queue", b"@viewer ")
        time.sleep(0.6)
        assert b"not an ImageNet class" in viewer.ask("!dream person", b"@viewer ")
        assert b"only moderators" in viewer.ask("!skip", b"@viewer ")
        assert labels(server).get("pizza") == "mod"
        assert b"now dreaming daisy" in mod.ask("!skip", b"skipped by mod")
        assert "daisy" == server.get_json("/api/state")["target"]["label"]
        time.sleep(0.6)
        viewer.ask("!dream lemon", b"@viewer ")
        assert b"1 removed" in mod.ask("!clear", b"cleared by mod")
        assert server.get_json("/api/state")["queue"] == []
    finally:
        rc, _ = stop_server(server)
        for c in (mod, viewer):
            if c is not None:
                c.close()
        ircd.terminate()
        ircd.wait(5)
    assert rc == 0 and "Traceback" not in server.log.read_text()
