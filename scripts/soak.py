"""Soak: a real stream for N minutes, as a streamer runs it, with an audience and faults on a
schedule. Writes soak.json (every sample, every fault, a summary) and soak.png (the samples
over time), and prints the summary.

    python scripts/soak.py --minutes 60 --out out/soak     # the README's figures
    python scripts/soak.py --minutes 2 --out /tmp/soak      # what `make test` runs

What runs, all real and on loopback: `dreamstream serve` on the default config, pushing RTMP
(1280x720, the overlay drawn) into nginx on the README's recipe (configs/nginx-hls.conf,
HLS out), reading chat from a stock ngircd, with clips on, its log in a rotated file, and
systemd's notify protocol on a datagram socket this script binds (as systemd would). From
one niced client process: viewers asking through chat (IRC), the page's websocket and POST
at human rates (each one request every 40-120 s, now and then a typo or a non-class), and
MJPEG viewers that come and go (each watches 10-90 s, then another comes). After the
warm-up, in turn, on a schedule: the ingest restarted (nginx stopped, down 3 s, started),
the IRC server restarted (down 3 s), and a crowd of 50 viewers that stop reading (for 20 s).

Every 10 s it samples the server: RSS, open file descriptors, threads, CPU, dreamed frames/s
(from the frame counter), shown frames/s, queue length, viewers, worker restarts, encoder
and chat state, /healthz, and errors and tracebacks in its log. A fault's recovery time runs
from the peer being back (or the crowd gone) to the server streaming again (the encoder
live), back in the channel, or serving its usual viewers with /healthz 200.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadtest import ROOT, _stalled, address, audience_config, free_port, get, wait_healthy
from peers import start_nginx, start_ngircd, stop

CLASSES = ["volcano", "jellyfish", "pizza", "coral reef", "goldfish", "daisy", "lighthouse", "castle", "broccoli",
           "monarch butterfly", "strawberry", "peacock", "tabby cat", "pizzza", "Volcanos", "dog", "qqxxzz"]
SAMPLE_S = 10.0
DOWN_S = 3.0  # how long the ingest and the IRC server stay down
CROWD, CROWD_S = 50, 20.0
RECOVERY_LIMIT_S = 60.0  # a fault not recovered by then counts as not recovered


# -- the audience (one niced process, its own event loop) -----------------------------------------
async def nap(seconds: float, stop_at: float) -> None:
    await asyncio.sleep(max(0.0, min(seconds, stop_at - time.monotonic())))


async def _irc_viewer(port: int, nick: str, stop_at: float, out: dict) -> None:
    """Joins #dream, asks now and then, answers PING; comes back when the server does."""
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
            next_ask = time.monotonic() + random.uniform(5, 40)
            while time.monotonic() < stop_at:
                try:
                    line = await asyncio.wait_for(reader.readline(), 1.0)
                except asyncio.TimeoutError:
                    line = None
                if line == b"":
                    break  # the server went away
                if line and line.startswith(b"PING"):
                    writer.write(b"PONG" + line[4:])
                elif line and b" 001 " in line:
                    writer.write(b"JOIN #dream\r\n")
                if time.monotonic() > next_ask:
                    writer.write(f"PRIVMSG #dream :!dream {random.choice(CLASSES)}\r\n".encode())
                    out["sent"]["chat"] += 1
                    next_ask = time.monotonic() + random.uniform(40, 120)
                await writer.drain()
            writer.close()
        except OSError:
            pass
        await nap(1.0, stop_at)


async def _ws_viewer(ws_url: str, n: int, stop_at: float, out: dict) -> None:
    """The page left open: takes the state pushes, asks now and then."""
    from websockets.asyncio.client import connect

    while time.monotonic() < stop_at:
        try:
            async with connect(ws_url, additional_headers={"X-Forwarded-For": address(n)}) as ws:
                next_ask = time.monotonic() + random.uniform(5, 40)
                while time.monotonic() < stop_at:
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                        if msg.get("type") in ("ack", "error"):
                            out["answers"][msg.get("code", "ack")] = out["answers"].get(msg.get("code", "ack"), 0) + 1
                    except asyncio.TimeoutError:
                        pass
                    if time.monotonic() > next_ask:
                        await ws.send(json.dumps({"type": "request", "text": random.choice(CLASSES), "user": f"ws{n}"}))
                        out["sent"]["websocket"] += 1
                        next_ask = time.monotonic() + random.uniform(40, 120)
        except Exception:  # noqa: BLE001 - the server closing us is how a session ends
            out["failed"]["websocket"] += 1
            await nap(1.0, stop_at)


async def _poster(session, base: str, stop_at: float, out: dict) -> None:
    await nap(random.uniform(5, 40), stop_at)
    while time.monotonic() < stop_at:
        try:
            async with session.post(base + "/api/request", json={"text": random.choice(CLASSES), "user": "poster"},
                                    headers={"X-Forwarded-For": address(900)}) as r:
                out["answers"][f"http {r.status}"] = out["answers"].get(f"http {r.status}", 0) + 1
                out["sent"]["post"] += 1
        except Exception:  # noqa: BLE001 - counted, not raised
            out["failed"]["post"] += 1
        await nap(random.uniform(40, 120), stop_at)


async def _mjpeg_viewer(session, base: str, n: int, stop_at: float, out: dict) -> None:
    """Comes, watches 10-90 s, goes; another comes after a pause."""
    while time.monotonic() < stop_at:
        await nap(random.uniform(0, 15), stop_at)
        if time.monotonic() >= stop_at:
            break
        leave = min(stop_at, time.monotonic() + random.uniform(10, 90))
        try:
            async with session.get(base + "/stream.mjpg", headers={"X-Forwarded-For": address(n)}) as r:
                if r.status != 200:
                    out["failed"]["mjpeg"] += 1
                    continue
                out["sent"]["mjpeg_visits"] += 1
                async for chunk in r.content.iter_chunked(65536):
                    out["mjpeg_bytes"] += len(chunk)
                    if time.monotonic() > leave:
                        break
        except Exception:  # noqa: BLE001 - counted, not raised
            out["failed"]["mjpeg"] += 1


async def _crowds(base: str, starts: list[float], out: dict) -> None:
    """At each start (time.monotonic(), the same clock in every process), CROWD viewers that
    stop reading, for CROWD_S."""
    for at in starts:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        crowd = {"failed": 0}
        await asyncio.gather(*[_stalled(base, time.monotonic() + CROWD_S, crowd) for _ in range(CROWD)])
        out["failed"]["stalled"] += crowd["failed"]


def audience(base: str, ws_url: str, irc_port: int, seconds: float, crowd_at: list[float], queue) -> None:
    os.nice(10)
    import aiohttp

    out = {"sent": {"chat": 0, "websocket": 0, "post": 0, "mjpeg_visits": 0}, "answers": {}, "mjpeg_bytes": 0,
           "failed": {"websocket": 0, "post": 0, "mjpeg": 0, "stalled": 0}}

    async def main():
        stop_at = time.monotonic() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
            await asyncio.gather(*[_irc_viewer(irc_port, f"viewer{i}", stop_at, out) for i in range(3)],
                                 *[_ws_viewer(ws_url, 100 + i, stop_at, out) for i in range(4)],
                                 _poster(session, base, stop_at, out),
                                 *[_mjpeg_viewer(session, base, 200 + i, stop_at, out) for i in range(8)],
                                 _crowds(base, crowd_at, out))

    asyncio.run(main())
    queue.put(out)


# -- watching the server ---------------------------------------------------------------------------
class Watchdog(threading.Thread):
    """What systemd would hear: READY, WATCHDOG pings (their longest gap), STOPPING."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.heard: list[tuple[float, str]] = []

    def run(self) -> None:
        while True:
            try:
                msg = self.sock.recv(4096).decode()
            except OSError:
                return
            self.heard.append((time.monotonic(), msg.split("\n")[0]))

    def longest_gap(self, since: float) -> float | None:
        pings = [since] + [t for t, m in self.heard if m == "WATCHDOG=1" and t >= since]
        return round(max(b - a for a, b in zip(pings, pings[1:])), 1) if len(pings) > 1 else None


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def proc_status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return {"rss_mb": int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024,
            "threads": int(re.search(r"Threads:\s+(\d+)", status).group(1)),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "cpu_s": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}


def log_counts(log: Path) -> dict:
    """Errors, tracebacks and warnings in the server's log and its rotated files."""
    counts = {"errors": 0, "tracebacks": 0, "warnings": 0}
    for path in log.parent.glob(log.name + "*"):
        for line in path.read_text("utf-8", "replace").splitlines():
            counts["errors"] += " ERROR " in line
            counts["tracebacks"] += line.startswith("Traceback")
            counts["warnings"] += " WARNING " in line
    return counts


class Sampler:
    def __init__(self, base: str, pid: int, log: Path, t0: float):
        self.base, self.pid, self.log, self.t0 = base, pid, log, t0
        self.samples: list[dict] = []
        self._last: tuple[float, float, float] | None = None  # (time, frames, cpu)

    def state(self) -> dict:
        return json.loads(get(self.base + "/api/state", 5)[1])

    def restarts(self, worker: str) -> float:
        return metric(get(self.base + "/metrics", 5)[1].decode(), "dreamstream_worker_restarts_total",
                      f'{{worker="{worker}"}}')

    def log_text(self) -> str:
        return "".join(p.read_text("utf-8", "replace") for p in self.log.parent.glob(self.log.name + "*"))

    def sample(self) -> dict:
        now = time.monotonic()
        p = proc_status(self.pid)
        metrics = get(self.base + "/metrics", 5)[1].decode()
        state = self.state()
        try:
            health = get(self.base + "/healthz", 5)[0]
        except OSError as e:
            health = type(e).__name__
        frames = metric(metrics, "dreamstream_frames_total")
        last, self._last = self._last, (now, frames, p["cpu_s"])
        restarts = {m.group(1): float(m.group(2)) for m in
                    re.finditer(r'^dreamstream_worker_restarts_total\{worker="([^"]+)"\} (\S+)$', metrics, re.M)}
        s = {"t_s": round(now - self.t0, 1), "rss_mb": round(p["rss_mb"], 1), "fds": p["fds"], "threads": p["threads"],
             "cpu_pct": round(100 * (p["cpu_s"] - last[2]) / (now - last[0]), 1) if last else None,
             "dream_fps": round((frames - last[1]) / (now - last[0]), 2) if last else None,
             "shown_fps": round(metric(metrics, "dreamstream_fps", '{kind="output"}'), 2),
             "queue": len(state["queue"]), "viewers": state["viewers"], "listeners": state["stream"]["listeners"],
             "encoder": (state["stream"]["encoder"] or {}).get("state"),
             "chat": (state["stream"]["chat"] or {}).get("connected"), "health": health,
             "restarts": restarts, "clips": len(state.get("clips", [])), **log_counts(self.log)}
        self.samples.append(s)
        return s


def recover(check, limit: float = RECOVERY_LIMIT_S) -> float | None:
    """Seconds until check() is true (polled 4 times a second); None past the limit."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if check():
                return round(time.monotonic() - t0, 2)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    return None


def healthy(sampler: Sampler) -> bool:
    return get(sampler.base + "/healthz", 5)[0] == 200


def run_faults(plan: list[tuple[float, str]], peers: dict, sampler: Sampler, baseline_viewers: int,
               faults: list[dict]) -> None:
    """The faults, in their own thread, while the sampler samples."""
    for at, kind in plan:
        time.sleep(max(0.0, sampler.t0 + at - time.monotonic()))
        fault = {"kind": kind, "at_s": round(time.monotonic() - sampler.t0, 1)}
        if kind == "ingest restart":  # recovered: a new session got a second of video through
            sessions = sampler.restarts("rtmp-encoder")
            stop(peers["nginx"])
            time.sleep(DOWN_S)
            peers["nginx"] = start_nginx(peers["tmp"], peers["rtmp_port"], peers["nginx_http_port"])
            fault["recovered_s"] = recover(lambda: sampler.restarts("rtmp-encoder") > sessions
                                           and sampler.state()["stream"]["encoder"]["state"] == "live")
        elif kind == "irc restart":  # recovered: the reader is back in the channel
            joins = sampler.log_text().count("chat: reading #dream")
            stop(peers["ngircd"])
            time.sleep(DOWN_S)
            peers["ngircd"] = start_ngircd(peers["tmp"], peers["irc_port"])
            fault["recovered_s"] = recover(lambda: sampler.log_text().count("chat: reading #dream") > joins
                                           and sampler.state()["stream"]["chat"]["connected"] is True)
        else:  # the crowd (started by the audience process at this time) stops reading for CROWD_S, then goes
            time.sleep(CROWD_S)
            fault["peak_viewers"] = max((s["viewers"] for s in sampler.samples if s["t_s"] >= at), default=None)
            fault["recovered_s"] = recover(lambda: sampler.state()["viewers"] <= baseline_viewers and healthy(sampler))
        faults.append(fault)
        print(f"fault: {fault}", file=sys.stderr, flush=True)


# -- the summary and the plot ----------------------------------------------------------------------
def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return round(3600 * sum((x - mx) * (y - my) for x, y in points) / var, 2) if var else None


def summarize(samples: list[dict], faults: list[dict], warmup_s: float, watchdog: Watchdog, ready_at: float,
              t0: float) -> dict:
    if not samples:
        return {"samples": 0}
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples
    fps = [s["dream_fps"] for s in after if s["dream_fps"] is not None]
    fifth = max(1, len(fps) // 5)
    first, last = sum(fps[:fifth]) / fifth if fps else 0, sum(fps[-fifth:]) / fifth if fps else 0
    end = samples[-1] if samples else {}
    planned = {"rtmp-encoder"}  # the encoder restarts when the ingest does: that is the fault
    return {
        "rss_mb": {"start": samples[0]["rss_mb"], "after_warmup": after[0]["rss_mb"], "end": end.get("rss_mb"),
                   "peak": max(s["rss_mb"] for s in samples),
                   "slope_after_warmup_mb_per_h": slope_per_hour([(s["t_s"], s["rss_mb"]) for s in after])},
        "fds": {"min": min(s["fds"] for s in after), "max": max(s["fds"] for s in after),
                "end": end.get("fds")},
        "threads": {"min": min(s["threads"] for s in after), "max": max(s["threads"] for s in after),
                    "end": end.get("threads")},
        "dream_fps": {"first_fifth": round(first, 2), "last_fifth": round(last, 2),
                      "drift": round((last - first) / first, 3) if first else None},
        "shown_fps": {"min": min(s["shown_fps"] for s in after), "max": max(s["shown_fps"] for s in after)},
        "unplanned_restarts": {k: v for k, v in end.get("restarts", {}).items() if k not in planned and v},
        "encoder_restarts": end.get("restarts", {}).get("rtmp-encoder", 0),
        "health_not_200": sum(s["health"] != 200 for s in samples),
        "faults": {"count": len(faults), "recovered": sum(f["recovered_s"] is not None for f in faults),
                   "max_recovery_s": max((f["recovered_s"] for f in faults if f["recovered_s"] is not None),
                                         default=None)},
        "watchdog": {"pings": sum(m == "WATCHDOG=1" for _, m in watchdog.heard),
                     "ready_after_s": round(ready_at, 1) if ready_at is not None else None,
                     "longest_gap_s": watchdog.longest_gap(t0)},
        "log": {k: end.get(k) for k in ("errors", "tracebacks", "warnings")},
        "clips": end.get("clips"),
    }


def plot(samples: list[dict], faults: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    panels = [("memory (MB)", [("RSS", "rss_mb")]), ("count", [("open files", "fds"), ("threads", "threads")]),
              ("frames / s", [("dreamed", "dream_fps"), ("shown", "shown_fps")]),
              ("count", [("MJPEG viewers", "viewers"), ("websockets", "listeners"), ("queue", "queue")])]
    colours = {"ingest restart": "tab:red", "irc restart": "tab:purple", "stalled crowd": "tab:orange"}
    for ax, (ylabel, series) in zip(axes, panels):
        for label, key in series:
            ax.plot(t, [s[key] for s in samples], label=label, marker=".", linewidth=1)
        for f in faults:
            ax.axvline(f["at_s"] / 60, color=colours[f["kind"]], alpha=0.4, linewidth=1)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    for kind, colour in colours.items():
        axes[0].plot([], [], color=colour, alpha=0.6, label=f"fault: {kind}")
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- the run ---------------------------------------------------------------------------------------
def schedule(duration_s: float, warmup_s: float) -> list[tuple[float, str]]:
    """Faults in turn, evenly from the end of the warm-up, each with time to recover."""
    kinds = ["ingest restart", "irc restart", "stalled crowd"]
    every = max(30.0, min(300.0, (duration_s - warmup_s) / 9))
    plan, at = [], warmup_s
    while at + CROWD_S + 15 <= duration_s:
        plan.append((round(at, 1), kinds[len(plan) % 3]))
        at += every
    return plan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "soak", help="soak.json, soak.png, server.log here")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.toml")
    args = ap.parse_args()
    if args.minutes < 1.5:
        ap.error("--minutes must be at least 1.5 (a warm-up and three faults)")
    args.out.mkdir(parents=True, exist_ok=True)
    duration_s = args.minutes * 60
    warmup_s = min(300.0, 0.15 * duration_s)
    tmp = Path(tempfile.mkdtemp(prefix="dreamstream-soak-"))
    peers = {"tmp": tmp, "rtmp_port": free_port(), "nginx_http_port": free_port(), "irc_port": free_port()}
    peers["nginx"] = start_nginx(tmp, peers["rtmp_port"], peers["nginx_http_port"])
    peers["ngircd"] = start_ngircd(tmp, peers["irc_port"])
    watchdog = Watchdog(tmp / "notify")
    watchdog.start()
    port, ws_port = free_port(), free_port()
    base, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/"
    log = args.out / "server.log"
    for old in args.out.glob("server.log*"):
        old.unlink()
    command = [sys.executable, "-m", "stream", "serve", "--config", str(audience_config(args.config, CROWD + 50)),
               "--port", str(port), "--ws-port", str(ws_port), "--state-dir", str(tmp / "state"),
               "--rtmp", f"rtmp://127.0.0.1:{peers['rtmp_port']}/live/soak",
               "--chat", f"irc://127.0.0.1:{peers['irc_port']}", "--channel", "dream",
               "--log-file", str(log), "--clips", str(tmp / "clips")]
    started = time.monotonic()
    server = subprocess.Popen(command, cwd=ROOT, stdout=(args.out / "server.out").open("w"), stderr=subprocess.STDOUT,
                              env={**os.environ, "NOTIFY_SOCKET": str(tmp / "notify"), "WATCHDOG_USEC": "10000000"})
    clients, faults, exit_code, took = None, [], None, None
    try:
        wait_healthy(base)
        t0 = time.monotonic()
        sampler = Sampler(base, server.pid, log, t0)
        plan = schedule(duration_s, warmup_s)
        results = mp.Queue()
        clients = mp.Process(target=audience, args=(base, ws_url, peers["irc_port"], duration_s,
                                                    [t0 + at for at, kind in plan if kind == "stalled crowd"],
                                                    results),
                             daemon=True)
        clients.start()
        time.sleep(SAMPLE_S)
        sampler.sample()
        baseline = 8  # the come-and-go viewers, at most
        fault_thread = threading.Thread(target=run_faults, args=(plan, peers, sampler, baseline, faults), daemon=True)
        fault_thread.start()
        while time.monotonic() - t0 < duration_s and server.poll() is None:
            time.sleep(max(0.0, t0 + SAMPLE_S * (len(sampler.samples) + 1) - time.monotonic()))
            try:
                s = sampler.sample()
                print(f"{s['t_s']:7.0f} s  rss {s['rss_mb']} MB  fds {s['fds']}  threads {s['threads']}  "
                      f"dream {s['dream_fps']}/s  shown {s['shown_fps']}/s  viewers {s['viewers']}  "
                      f"encoder {s['encoder']}  chat {s['chat']}", file=sys.stderr, flush=True)
            except (OSError, ValueError) as e:  # a sample the server did not answer: noted, not fatal
                print(f"sample failed: {type(e).__name__}: {e}", file=sys.stderr)
        fault_thread.join(RECOVERY_LIMIT_S + DOWN_S + CROWD_S)  # it may be restarting a peer: never leave one behind
        heard = results.get(timeout=60) if server.poll() is None else {}
        died = server.poll() is not None
        if not died:
            t = time.monotonic()
            server.send_signal(signal.SIGTERM)
            exit_code = server.wait(30)
            took = round(time.monotonic() - t, 2)
    finally:
        if server.poll() is None:
            server.kill()
        if clients is not None and clients.is_alive():
            clients.kill()
        stop(peers["nginx"])
        stop(peers["ngircd"])
    ready = next((t for t, m in watchdog.heard if m == "READY=1"), None)
    summary = summarize(sampler.samples, faults, warmup_s, watchdog, None if ready is None else ready - started, t0)
    summary.update({"server_died": died, "exit": {"code": exit_code, "seconds": took},
                    "stopping_heard": any(m == "STOPPING=1" for _, m in watchdog.heard), "audience": heard})
    out = {"command": "python scripts/soak.py " + " ".join(sys.argv[1:]), "minutes": args.minutes,
           "warmup_s": warmup_s, "sample_s": SAMPLE_S, "summary": summary, "faults": faults,
           "samples": sampler.samples}
    (args.out / "soak.json").write_text(json.dumps(out, indent=1))
    plot(sampler.samples, faults, args.out / "soak.png",
         f"dreamstream soak: {args.minutes:g} min, RTMP 1280x720 to nginx, chat on ngircd, faults in turn")
    print(json.dumps({"summary": summary, "faults": faults}, indent=1))
    return 1 if died else 0


if __name__ == "__main__":
    sys.exit(main())
