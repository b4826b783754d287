"""A real `dreamstream serve` process on free ports, shared by the end-to-end tests."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_CONFIG = """
model = "efficientnet_lite0"
device = "cpu"
seed = 1
start_class = "volcano"
playlist = ["volcano", "coral reef"]
[dream]
size = [160, 96]
steps = 2
[serve]
max_ws_per_ip = 6
client_timeout_s = 3.0
[queue]
hold_s = 4.0
cooldown_s = 0.5
burst = 200
window_s = 60.0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    ws: str
    log: Path

    def get(self, path: str, timeout: float = 10):
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            return r.status, r.headers, r.read()

    def get_json(self, path: str):
        return json.loads(self.get(path)[2])

    def post(self, path: str, body: bytes):
        req = urllib.request.Request(self.base + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def start_server(tmp: Path, config: str = TEST_CONFIG, extra: list[str] = (),
                 ports: tuple[int, int] | None = None, env: dict[str, str] | None = None,
                 state_dir: Path | None = None, preexec_fn=None) -> Server:
    """`state_dir`: where the queue is kept; default a new folder, so no server sees another's queue."""
    cfg = tmp / "test.toml"
    cfg.write_text(config)
    port, ws_port = ports or (free_port(), free_port())
    log = tmp / "server.log"
    state = state_dir or Path(tempfile.mkdtemp(prefix="state-", dir=tmp))
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--config", str(cfg), "--port", str(port),
                             "--ws-port", str(ws_port), "--state-dir", str(state), *extra],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=preexec_fn,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    server = Server(proc, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if server.get("/healthz", timeout=2)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server never became healthy:\n{log.read_text()}")


def stop_server(server: Server) -> tuple[int, float]:
    t = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        rc = server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        rc = -9
    return rc, time.monotonic() - t


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    s = start_server(tmp, extra=["--clips", str(tmp / "clips")])
    yield s
    rc, took = stop_server(s)
    assert rc == 0 and took < 5, f"SIGTERM: rc={rc} after {took:.1f}s\n{s.log.read_text()[-3000:]}"
    log = s.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
