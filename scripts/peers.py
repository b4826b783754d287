"""The real servers a stream talks to, as the end-to-end tests and scripts/soak.py run them:
Debian's nginx with libnginx-mod-rtmp on the README's recipe (configs/nginx-hls.conf), and
a stock ngircd on Debian's own config; Debian's redis-server with appendonly on, as the README
tells users to run it. Only what a second copy on this machine must change is changed:
ports, loopback, and paths under a temporary folder.

    proc = start_nginx(tmp, rtmp_port, http_port)    # RTMP in, HLS out
    proc = start_ngircd(tmp, irc_port)               # returns once it accepts connections
    redis = RedisServer(tmp).start()                 # redis.url; .kill() and .start() again keep its data
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "nginx-hls.conf"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin")
NGIRCD = shutil.which("ngircd") or ("/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None)
DEBIAN_NGIRCD_CONF = Path("/etc/ngircd/ngircd.conf")
REDIS_SERVER = shutil.which("redis-server", path="/usr/bin:/usr/sbin")


def nginx_recipe(folder: Path, rtmp_port: int, http_port: int) -> str:
    """The recipe with its ports moved and everything it writes under `folder`."""
    text = RECIPE.read_text()
    for old, new in (("listen 1935;", f"listen {rtmp_port};"), ("listen 8088;", f"listen {http_port};"),
                     ("/tmp/dreamstream-", f"{folder}/")):
        if old not in text:
            raise ValueError(f"the recipe no longer has {old!r}")
        text = text.replace(old, new)
    return text


def start_nginx(tmp: Path, rtmp_port: int, http_port: int) -> subprocess.Popen:
    """nginx in the foreground on the recipe; its log in tmp/nginx.log."""
    (tmp / "nginx").mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_recipe(tmp / "nginx", rtmp_port, http_port))
    # As root nginx's workers drop to nobody, who cannot enter private temporary folders.
    run_as = " user root;" if os.geteuid() == 0 else ""
    proc = subprocess.Popen([NGINX, "-e", "stderr", "-c", str(conf), "-g", "daemon off;" + run_as],
                            stdout=subprocess.DEVNULL, stderr=(tmp / "nginx.log").open("a"))
    wait_for_port(rtmp_port, proc, "nginx")
    return proc


FRONTS_RECIPE = ROOT / "configs" / "nginx-fronts.conf"


def start_nginx_fronts(tmp: Path, http_port: int, ws_port: int, fronts: list[tuple[int, int]]) -> subprocess.Popen:
    """nginx on the front-doors recipe, its ports moved and its upstreams the given front
    doors' (HTTP port, websocket port) on this machine; its log in tmp/nginx-fronts.log."""
    text = FRONTS_RECIPE.read_text()
    for old, new in (("listen 8080;", f"listen {http_port};"), ("listen 8765;", f"listen {ws_port};"),
                     ("/tmp/dreamstream-fronts-nginx.pid", str(tmp / "nginx-fronts.pid"))):
        if old not in text:
            raise ValueError(f"the recipe no longer has {old!r}")
        text = text.replace(old, new)
    for i, (front_http, front_ws) in enumerate(fronts):
        text = text.replace(f"server 10.0.0.1{i + 1}:8080;", f"server 127.0.0.1:{front_http};")
        text = text.replace(f"server 10.0.0.1{i + 1}:8765;", f"server 127.0.0.1:{front_ws};")
    conf = tmp / "nginx-fronts.conf"
    conf.write_text(text)
    run_as = " user root;" if os.geteuid() == 0 else ""
    proc = subprocess.Popen([NGINX, "-e", "stderr", "-c", str(conf), "-g", "daemon off;" + run_as],
                            stdout=subprocess.DEVNULL, stderr=(tmp / "nginx-fronts.log").open("a"))
    wait_for_port(http_port, proc, "nginx")
    return proc


def ngircd_conf(port: int, tmp: Path) -> str:
    """Debian's own ngircd.conf as installed, with the port, loopback only and a PID file of
    its own. Its limits stay (a nick of at most 9 characters, the RFC's), as every user of a
    stock server has them."""
    text = DEBIAN_NGIRCD_CONF.read_text() if DEBIAN_NGIRCD_CONF.exists() else "[Global]\n\tName = irc.example.net\n"
    text = re.sub(r"(?m)^\s*;?\s*(Ports|Listen|PidFile)\s*=.*$", "", text)
    return text.replace("[Global]", f"[Global]\n\tPorts = {port}\n\tListen = 127.0.0.1\n"
                                      f"\tPidFile = {tmp / 'ngircd.pid'}", 1)


def start_ngircd(tmp: Path, port: int) -> subprocess.Popen:
    conf = tmp / "ngircd.conf"
    conf.write_text(ngircd_conf(port, tmp))
    proc = subprocess.Popen([NGIRCD, "-n", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, "ngircd")
    return proc


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start on port {port}")


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM (nginx: fast shutdown, ngircd: quit), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, folder: Path, password: str | None = None):
        self.folder, self.port, self.password = folder, _free_port(), password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{':' + self.password + '@' if self.password else ''}127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--appendonly", "yes", "--save", "", "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: what its appendonly file holds is what comes back (written before each reply;
        fsync'd every second, which only a power cut would need)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
