"""Requests survive kill -9: a real `dreamstream serve` is killed with SIGKILL and started
again on the same state folder, again and again, with 3-5 new requests (some of them votes)
queued before each kill; every acknowledged request must come back, in order, with its
votes, and what plays must play on with the time it had left less the restart's.

    python scripts/kill_restarts.py                  # 20 restarts, about 4 minutes on a 2-core CPU
    python scripts/kill_restarts.py --restarts 5
    python scripts/kill_restarts.py --roles          # a redis-server, a dreamer and a front door
    python scripts/kill_restarts.py --roles --kill redis --restarts 10 --viewers 100   # Redis, under load

With `--roles` the queue is shared through a local redis-server (appendonly, as the README
runs it), requests go to a `serve --role front`, and each restart kills one of the three in
turn with SIGKILL: the front door, the dreamer, Redis itself (`--kill` picks some). With
`--viewers N`, N MJPEG viewers and N / 5 open pages (websockets) watch at the front door
through every round (loadtest.py's clients, one process).

Prints one JSON object: restarts, requests acknowledged, requests back, entries whose
votes or order differed, the seconds each restart took (kill to healthy) and how far the
time left moved against the time the restart took.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from live_frames import state
from loadtest import client_process, free_port, wait_healthy
from peers import RedisServer

from dreamer.classes import catalogue

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
device = "cpu"
[dream]
size = [160, 96]
[queue]
hold_s = 3600.0
cooldown_s = 0.0
max_queue = 500
attempts_per_s = 100.0
attempt_burst = 100
burst = 1000
"""


def post(base: str, text: str, user: str) -> dict:
    req = urllib.request.Request(base + "/api/request", data=json.dumps({"text": text, "user": user}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def kept(s: dict) -> tuple:
    """What must survive: what plays (id, who asked) and the queue in order with its votes."""
    t = s["target"]
    return (t["id"], t["label"], t["user"]), [(e["id"], e["label"], e["votes"], e["user"]) for e in s["queue"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--restarts", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--roles", action="store_true", help="a redis-server, a dreamer and a front door, killed in turn")
    ap.add_argument("--kill", default="front,dreamer,redis", help="with --roles: which of them are killed, in turn")
    ap.add_argument("--viewers", type=int, default=0, help="with --roles: MJPEG viewers at the front door meanwhile")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    names = catalogue().names
    tmp = Path(tempfile.mkdtemp(prefix="dreamstream-restarts-"))
    # the viewers come from loopback, each named in X-Forwarded-For (loadtest.address)
    audience = f'[serve]\nmax_viewers = {2 * args.viewers}\ntrusted_proxies = ["127.0.0.1"]\n' if args.viewers else ""
    (tmp / "restarts.toml").write_text(CONFIG + audience)
    log = (tmp / "server.log").open("a")
    redis = RedisServer(tmp).start() if args.roles else None

    def serve(*extra: str) -> tuple[list[str], str]:
        port, ws_port = free_port(), free_port()
        return ([sys.executable, "-m", "stream", "serve", "--config", str(tmp / "restarts.toml"), "--port", str(port),
                 "--ws-port", str(ws_port), "--state-dir", str(tmp / "state"), *extra], f"http://127.0.0.1:{port}")

    parts = {"serve": serve()} if redis is None else \
        {role: serve("--role", role, "--queue", redis.url) for role in ("dreamer", "front")}
    base = parts["front" if redis else "serve"][1]

    def start(part: str) -> subprocess.Popen:
        command, its_base = parts[part]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_healthy(its_base)
        return proc

    def queue_back() -> None:
        """Until the front door has read the shared queue again (it tries after a backoff; its
        /healthz says so, whatever its status)."""
        end = time.monotonic() + 30
        while True:
            state(base)  # a read of the queue: the one that finds Redis back
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
                    body = r.read()
            except urllib.error.HTTPError as e:  # 503 while the dreamer's frames are not back yet
                body = e.read()
            if json.loads(body).get("queue") == "ok":
                return
            if time.monotonic() > end:
                raise RuntimeError("the front door never read the queue again")
            time.sleep(0.2)

    procs = {part: start(part) for part in parts}
    victims = args.kill.split(",") if redis else ["serve"]
    if not set(victims) <= {"front", "dreamer", "redis"}:
        ap.error(f"--kill {args.kill}: name front, dreamer and redis, joined by commas")
    watching = None
    if args.viewers:
        command = parts["front" if redis else "serve"][0]
        ws_url = f"ws://127.0.0.1:{command[command.index('--ws-port') + 1]}/"
        watching = mp.Process(target=client_process, args=(base, ws_url, args.viewers, 0, 0, 3600.0, 0, mp.Queue()),
                              kwargs={"listeners": args.viewers // 5})
        watching.start()
    acked: set[str] = set()
    lost, differed, restart_s, drift_s, watched = [], 0, {v: [] for v in victims}, [], 0
    try:
        for i in range(args.restarts):
            queued = [e["label"] for e in state(base)["queue"]]
            for j in range(rng.randint(3, 5)):
                # one in four a vote for something queued, else a new class
                text = rng.choice(queued) if queued and rng.random() < 0.25 else rng.choice(names)
                acked.add(post(base, text, f"viewer{i}-{j}")["id"])
            before = state(base)
            watched = max(watched, before["viewers"])
            victim = victims[i % len(victims)]
            killed = time.monotonic()
            if victim == "redis":
                redis.kill()
                redis.start()
            else:
                procs[victim].kill()
                procs[victim].wait()
                procs[victim] = start(victim)
            if redis is not None:
                queue_back()
            after = state(base)
            down = time.monotonic() - killed
            restart_s[victim].append(round(down, 2))
            now = {after["target"]["id"], *(e["id"] for e in after["queue"])}
            lost += sorted(acked - now - {r["id"] for r in after["recent"]})
            differed += kept(before) != kept(after)
            # the time left should drop by the restart's length (measured from the kill to the
            # state read, so a little more than the restart itself)
            drift_s.append(round(before["target"]["remaining_s"] - after["target"]["remaining_s"] - down, 2))
    finally:
        if watching is not None:
            watching.kill()
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        if redis is not None:
            redis.kill()
    print(json.dumps({"restarts": args.restarts, "killed": victims, "viewers": args.viewers, "viewers_seen": watched,
                      "requests_acknowledged": len(acked),
                      "requests_back": len(acked) - len(lost), "lost": lost, "rounds_that_differed": differed,
                      "restart_s": {v: {"min": min(t), "max": max(t), "all": t} for v, t in restart_s.items() if t},
                      "time_left_minus_downtime_s": {"min": min(drift_s), "max": max(drift_s)},
                      "log": str(tmp / "server.log")}, indent=1))


if __name__ == "__main__":
    main()
