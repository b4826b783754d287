"""A stream that never stops, measured: two `serve --role dreamer` on one local redis-server,
both pushing RTMP to one local nginx (the README's recipe), and a front door taking requests.
Each round kills the active dreamer with SIGKILL and times the standby's takeover, then starts
the killed one again as the new standby.

    python scripts/failover.py                  # 10 rounds, about 4 minutes on a 2-core CPU
    python scripts/failover.py --rounds 3

Prints one JSON object and one line per round on stderr:
  takeover_s    SIGKILL to the first frame the new active dreamer publishes (a front door shows it)
  lease_s       SIGKILL to the new lease (the old one runs out: TTL 2 s)
  rtmp_s        SIGKILL to the new active's RTMP push taken by nginx (a second of video
                sent: the encoder's "live")
  requests      acknowledged before the kill, and after it: lost (not in the queue) and doubled
  standby_cpu   a waiting standby's CPU, % of one core over 10 s
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis
from kill_restarts import post
from live_frames import state
from loadtest import free_port, start_serve, wait_healthy
from peers import RedisServer, start_nginx, stop

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "dreamstream:default:"
# the queue's section of the default config, so that one address may ask 30 times and nothing plays out
QUEUE = """[queue]
hold_s = 3600.0
cooldown_s = 0.0
attempts_per_s = 100.0
attempt_burst = 100
burst = 1000
"""


def health(base: str) -> dict:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def until(check, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(step)
    return result


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="failover-"))
    config = tmp / "failover.toml"
    config.write_text((ROOT / "configs" / "default.toml").read_text().split("[queue]")[0] + QUEUE)  # its last section
    store = RedisServer(tmp).start()
    rtmp_port = free_port()
    nginx = start_nginx(tmp, rtmp_port, free_port())
    role = ["--queue", store.url, "--role", "dreamer", "--rtmp", f"rtmp://127.0.0.1:{rtmp_port}/live/dream"]
    logs = tmp / "logs"
    logs.mkdir()
    procs: dict[str, tuple] = {}
    rounds, acked = [], []

    def start(name: str):
        proc, base, _ = start_serve(config, (logs / f"{name}-{len(rounds)}.log").open("w"), *role)
        wait_healthy(base, 180)
        until(lambda: health(base).get("lease", {}).get("active"), 30)
        procs[name] = (proc, base)

    client = redis.Redis(port=store.port)
    try:
        start("one")
        start("two")
        front, front_base, _ = start_serve(config, (logs / "front.log").open("w"), "--queue", store.url,
                                           "--role", "front")
        wait_healthy(front_base, 60)
        standby_cpu = None
        for proc, base in procs.values():
            if health(base)["lease"]["state"] == "standby":
                before = cpu_s(proc.pid)
                time.sleep(10)
                standby_cpu = round((cpu_s(proc.pid) - before) / 10 * 100, 1)
        for n in range(args.rounds):
            active = until(lambda: next((k for k, (_, b) in procs.items()
                                         if health(b).get("lease", {}).get("state") == "active"), None), 30)
            standby = next(k for k in procs if k != active)
            until(lambda: state(procs[active][1])["stream"]["encoder"]["state"] == "live", 60)
            for i in range(3):
                acked.append(post(front_base, ["pizza", "daisy", "lemon", "castle"][(n + i) % 4], f"u{n}-{i}")["id"])
            generation = int(client.get(PREFIX + "lease").split()[0])
            frames = client.pubsub(ignore_subscribe_messages=True)
            frames.subscribe(PREFIX + "frames")
            frames.get_message(timeout=1.0)
            killed = time.monotonic()
            procs[active][0].kill()
            procs[active][0].wait()
            lease = until(lambda: (raw := client.get(PREFIX + "lease")) and int(raw.split()[0]) > generation
                          and time.monotonic(), 30)
            while frames.get_message(timeout=0.0) is not None:  # the dead one's, read only now
                pass
            while frames.get_message(timeout=5.0) is None:
                if time.monotonic() - killed > 30:
                    raise TimeoutError("no frame from the new active dreamer")
            took = time.monotonic() - killed
            frames.close()
            live = until(lambda: state(procs[standby][1])["stream"]["encoder"]["state"] == "live"
                         and time.monotonic(), 60)
            s = state(front_base)
            ids = [s["target"]["id"]] + [q["id"] for q in s["queue"]]
            row = {"takeover_s": round(took, 2), "lease_s": round(lease - killed, 2),
                   "rtmp_s": round(live - killed, 2), "acked": len(acked),
                   "lost": sum(a not in ids for a in acked), "doubled": len(ids) - len(set(ids))}
            rounds.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            del procs[active]
            start(active)
        takeover = [r["takeover_s"] for r in rounds]
        rtmp = [r["rtmp_s"] for r in rounds]
        print(json.dumps({"rounds": len(rounds), "takeover_s": {"median": statistics.median(takeover),
                                                                  "max": max(takeover)},
                          "within_3_s": sum(t <= 3.0 for t in takeover),
                          "rtmp_s": {"median": statistics.median(rtmp), "max": max(rtmp)},
                          "rtmp_within_6_s": sum(t <= 6.0 for t in rtmp),
                          "requests": {"acknowledged": len(acked), "lost": rounds[-1]["lost"] if rounds else 0,
                                       "doubled": max((r["doubled"] for r in rounds), default=0)},
                          "standby_cpu_percent": standby_cpu, "logs": str(logs)}, indent=1))
    finally:
        for proc, _ in procs.values():
            proc.kill()
        if "front" in locals():
            front.kill()
        stop(nginx)
        store.kill()


if __name__ == "__main__":
    main()
