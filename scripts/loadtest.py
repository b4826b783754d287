"""Load: does the dream keep its pace while an audience watches and pokes? One JSON object.

Starts a real `dreamstream serve` (the default config unless --config) on free ports, measures
the dream rate idle, then drives MJPEG viewers, stalled viewers (they connect and stop
reading) and websocket clients that flood requests (unknown classes mostly, as a bored or
hostile audience does) from client processes at lower priority (nice 10, as remote viewers
are not on this machine), then measures again after they leave. Reports the dream rate idle /
under load / after and the ratio, the server's memory before / peak / after, /healthz
answers that were not 200, viewers that failed, the first-frame latency of viewers, and
whether the server logged a traceback.

    python scripts/loadtest.py                                 # 500 viewers, 50 stalled, 100 flooders, 60 s
    python scripts/loadtest.py --viewers 50 --stalled 5 --flooders 10 --seconds 20
    python scripts/loadtest.py --fronts 2    # one dreamer and 2 front doors on a local redis-server

With `--fronts N` the stream is split by roles (README, "One queue for several processes"): a
redis-server, one `serve --role dreamer` (whose dream rate is measured) and N `serve --role
front`, the clients spread over the front doors; it also reports how long a request made at
one front door takes to show in another's /api/state.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def frames_total(base: str) -> float:
    text = get(base + "/metrics", 10)[1].decode()
    return float(re.search(r"^dreamstream_frames_total (\S+)", text, re.M).group(1))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


class Watch:
    """The dream rate over a phase, with /healthz and memory sampled every second."""

    def __init__(self, base: str, pid: int):
        self.base, self.pid = base, pid
        self.bad_health, self.checks, self.peak_rss = [], 0, 0.0

    def phase(self, seconds: float) -> float:
        f0, t0 = frames_total(self.base), time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            self.checks += 1
            try:
                status = get(self.base + "/healthz", 5)[0]
            except OSError as e:  # no answer within 5 s counts as a failed check
                status = type(e).__name__
            if status != 200:
                self.bad_health.append(status)
            self.peak_rss = max(self.peak_rss, rss_mb(self.pid))
        return (frames_total(self.base) - f0) / (time.monotonic() - t0)


# -- clients (each process its own event loop, niced) ---------------------------------------------
def address(n: int) -> str:
    """A distinct documentation-range address per client (sent as X-Forwarded-For through
    the trusted loopback 'proxy'), so that each has its own budget, as remote viewers do."""
    return f"198.18.{n // 250}.{n % 250 + 1}"


async def _viewer(session, base: str, stop: float, out: dict, n: int) -> None:
    t0 = time.monotonic()
    try:
        async with session.get(base + "/stream.mjpg", headers={"X-Forwarded-For": address(n)}) as r:
            if r.status != 200:
                out["failed"] += 1
                return
            first = True
            async for chunk in r.content.iter_chunked(65536):
                if first:
                    out["first_frame_s"].append(time.monotonic() - t0)
                    first = False
                out["bytes"] += len(chunk)
                if time.monotonic() > stop:
                    return
    except Exception:  # noqa: BLE001 - any failure of a viewer is counted, not raised
        out["failed"] += 1


async def _frozen(host: str, port: int):
    """A connection with a small receive window (a phone on a bad network): once it stops
    reading, the server's writes to it block within a frame or two, as they would over the
    internet, not after the megabytes that loopback buffers hold."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock)


async def _stalled(base: str, stop: float, out: dict) -> None:
    """Connects, asks for the stream, reads nothing more: a viewer whose network froze."""
    host, port = base.split("//")[1].split(":")
    try:
        reader, writer = await _frozen(host, int(port))
        writer.write(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        writer.close()
    except OSError:
        out["failed"] += 1


async def _flooder(ws_url: str, stop: float, out: dict, n: int) -> None:
    from websockets.asyncio.client import connect

    texts = ["qqxxzz", "definitely not a class", "pizzza", "volcano", f"zz{n}"]
    try:
        async with connect(ws_url, max_queue=None, additional_headers={"X-Forwarded-For": address(n)}) as ws:
            i = 0
            while time.monotonic() < stop:
                await ws.send(json.dumps({"type": "request", "text": texts[i % len(texts)], "user": f"flood{n}"}))
                i += 1
                out["sent"] += 1
                try:
                    while True:  # drain whatever came back, without waiting
                        await asyncio.wait_for(ws.recv(), 0.001)
                except asyncio.TimeoutError:
                    pass
                await asyncio.sleep(0.01)
    except Exception:  # noqa: BLE001 - the server closing a flood (1008) is the expected end
        out["flooders_closed"] += 1


async def _listener(ws_url: str, stop: float, out: dict, n: int) -> None:
    """A page left open: a websocket that takes the state pushes and says nothing."""
    from websockets.asyncio.client import connect

    try:
        async with connect(ws_url, additional_headers={"X-Forwarded-For": address(n)}) as ws:
            while time.monotonic() < stop:
                try:
                    await asyncio.wait_for(ws.recv(), max(0.01, stop - time.monotonic()))
                except asyncio.TimeoutError:
                    pass
    except Exception:  # noqa: BLE001 - the server going away is how a listener ends
        out["listeners_closed"] += 1


async def _stalled_ws(ws_url: str, stop: float, out: dict, n: int) -> None:
    """Completes the websocket handshake, then never reads again: a tab whose network froze
    (it will not answer the server's close either)."""
    host, port = ws_url.split("//")[1].strip("/").split(":")
    try:
        reader, writer = await _frozen(host, int(port))
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: ZHJlYW1zdHJlYW0tc3RhbA==\r\nSec-WebSocket-Version: 13\r\n"
                     f"X-Forwarded-For: {address(n)}\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # 101 Switching Protocols; nothing is read after it
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        writer.close()
    except (OSError, asyncio.IncompleteReadError):
        out["failed"] += 1


def client_process(base: str, ws_url: str, viewers: int, stalled: int, flooders: int, seconds: float,
                   offset: int, queue, listeners: int = 0, stalled_ws: int = 0) -> None:
    """One client process: `offset` keeps its clients' addresses apart from the others'."""
    os.nice(10)
    import aiohttp

    out = {"failed": 0, "bytes": 0, "first_frame_s": [], "sent": 0, "flooders_closed": 0, "listeners_closed": 0}

    async def main():
        stop = time.monotonic() + seconds
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None)) as session:
            tasks = [_viewer(session, base, stop, out, offset + i) for i in range(viewers)]
            tasks += [_stalled(base, stop, out) for _ in range(stalled)]
            tasks += [_flooder(ws_url, stop, out, offset + 500 + i) for i in range(flooders)]
            tasks += [_listener(ws_url, stop, out, offset + 750 + i) for i in range(listeners)]
            tasks += [_stalled_ws(ws_url, stop, out, offset + 900 + i) for i in range(stalled_ws)]
            await asyncio.gather(*tasks)

    asyncio.run(main())
    queue.put(out)


def audience_config(base: Path, audience: int) -> Path:
    """`base` with the viewer cap raised to the audience and loopback trusted as the proxy
    that names each client (see `address`): a temporary TOML file."""
    config = Path(tempfile.mkdtemp()) / "load.toml"
    text = base.read_text()
    text = text.replace("[serve]", f"[serve]\nmax_viewers = {max(200, audience)}\n"
                                   'trusted_proxies = ["127.0.0.1"]', 1)
    config.write_text(text)
    return config


def start_serve(config: Path, log, *extra: str) -> tuple[subprocess.Popen, str, str]:
    """A `serve` on free ports: the process, its HTTP base and its websocket URL."""
    port, ws_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--config", str(config), "--port", str(port),
                             "--ws-port", str(ws_port), "--device", "cpu",
                             "--state-dir", tempfile.mkdtemp(dir=config.parent), *extra],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/"


def spread_s(a: str, b: str, trials: int = 10) -> dict:
    """How long a request made at front door `a` takes to show in front door `b`'s state."""
    took = []
    for i in range(trials):
        text = ["pizza", "daisy", "lemon", "castle", "goldfish"][i % 5]
        body = json.dumps({"text": text, "user": f"spread {i}"}).encode()
        req = urllib.request.Request(a + "/api/request", body, {"Content-Type": "application/json",
                                                               "X-Forwarded-For": address(2000 + i)})
        t = time.monotonic()
        with urllib.request.urlopen(req, timeout=5) as r:
            rid = json.loads(r.read())["id"]
        while True:
            state = json.loads(get(b + "/api/state")[1])
            if state["target"]["id"] == rid or any(q["id"] == rid for q in state["queue"]):
                break
        took.append(time.monotonic() - t)
    return {"median_s": round(statistics.median(took), 4), "max_s": round(max(took), 4), "trials": trials}


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (i < n % parts) for i in range(parts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=500)
    ap.add_argument("--stalled", type=int, default=50)
    ap.add_argument("--flooders", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0, help="under load")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--processes", type=int, default=4, help="client processes")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.toml")
    ap.add_argument("--fronts", type=int, default=0, help="front doors (--role front) beside one dreamer")
    args = ap.parse_args()
    config = audience_config(args.config, args.viewers + args.stalled)

    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    redis, fronts = None, []
    if args.fronts:
        from peers import RedisServer

        redis = RedisServer(Path(tempfile.mkdtemp(prefix="dreamstream-load-redis-"))).start()
        proc, base, _ = start_serve(config, log, "--role", "dreamer", "--queue", redis.url)
        fronts = [start_serve(config, log, "--role", "front", "--queue", redis.url) for _ in range(args.fronts)]
    else:
        proc, base, ws_url = start_serve(config, log)
    doors = [(b, w) for _, b, w in fronts] or [(base, ws_url)]
    try:
        wait_healthy(base)
        for _, front, _ in fronts:
            wait_healthy(front)
        time.sleep(3)  # the first frames settle
        watch = Watch(base, proc.pid)
        rss_before = rss_mb(proc.pid)
        idle = watch.phase(args.idle_seconds)
        queue = mp.Queue()
        parts = [split(n, args.processes) for n in (args.viewers, args.stalled, args.flooders)]
        clients = [mp.Process(target=client_process, args=(*doors[i % len(doors)], parts[0][i], parts[1][i],
                                                           parts[2][i], args.seconds + 4, i * 1000, queue))
                   for i in range(args.processes)]
        for c in clients:
            c.start()
        time.sleep(4)  # everyone connected
        loaded = watch.phase(args.seconds)
        results = [queue.get(timeout=120) for _ in clients]
        for c in clients:
            c.join(30)
        time.sleep(5)  # they left
        after = watch.phase(args.idle_seconds)
        rss_after = rss_mb(proc.pid)
        spread = spread_s(doors[0][0], doors[1][0]) if len(doors) > 1 else None
        front_rss = [round(rss_mb(f[0].pid), 1) for f in fronts]
    finally:
        for p in [proc] + [f[0] for f in fronts]:
            p.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        for f in fronts:
            f[0].wait(30)
        if redis is not None:
            redis.kill()
    text = Path(log.name).read_text()
    first = [x for r in results for x in r["first_frame_s"]]
    out = {"viewers": args.viewers, "stalled": args.stalled, "flooders": args.flooders, "seconds": args.seconds,
           "dream_fps": {"idle": round(idle, 2), "load": round(loaded, 2), "after": round(after, 2),
                         "ratio": round(loaded / idle, 3) if idle else None},
           "rss_mb": {"before": round(rss_before, 1), "peak": round(watch.peak_rss, 1), "after": round(rss_after, 1)},
           "failed_viewers": sum(r["failed"] for r in results),
           "flooders_closed": sum(r["flooders_closed"] for r in results),
           "requests_sent": sum(r["sent"] for r in results),
           "mjpeg_mb_read": round(sum(r["bytes"] for r in results) / 2**20, 1),
           "first_frame_s": ({"median": round(statistics.median(first), 2), "max": round(max(first), 2)}
                             if first else None),
           "health": {"checks": watch.checks, "not_200": watch.bad_health},
           "traceback_in_log": "Traceback" in text, "exit_code": rc, "log": log.name,
           **({"fronts": args.fronts, "request_spread": spread, "front_rss_mb": front_rss} if fronts else {})}
    print(json.dumps(out, indent=1))


def wait_healthy(base: str, timeout_s: float = 180.0) -> None:
    """Until the server's /healthz says 200 (the model loads first): the scripts' start line."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            if get(base + "/healthz", 2)[0] == 200:
                return
        except OSError:  # the port is bound before the model loads, but not answered yet
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base} never became healthy")


if __name__ == "__main__":
    main()
