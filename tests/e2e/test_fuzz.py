"""Hostile input in bulk, over HTTP and the websocket, with and without an RTMP push (whose
overlay draws viewers' names with OpenCV): no 5xx, no websocket close 1011, no traceback,
and the dream goes on.

DREAMSTREAM_FUZZ_N=25000 runs the 100k-input check (3N HTTP requests and N websocket messages;
about 10 minutes on two cores); the suite sends a few thousand of each kind.
"""
import asyncio
import json
import os
import random
import re
import time
import unicodedata
import urllib.parse

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import TEST_CONFIG, free_port, start_server, stop_server
from .test_rtmp import end, listen

PER_KIND = int(os.environ.get("DREAMSTREAM_FUZZ_N", "2000"))
CONFIG = TEST_CONFIG.replace("[queue]\n", "[queue]\nattempts_per_s = 1000.0\nattempt_burst = 10000\n") \
    .replace("hold_s = 4.0", "hold_s = 1.0").replace("cooldown_s = 0.5", "cooldown_s = 0.0") \
    .replace("burst = 200", "burst = 10000")

NASTY = ["\udc80", "\ud83d", "\x00", "\r\n", "\x1b[2J", "\u202e", "\u200b", "\ufeff", "\u0301" * 50,
         "%s%n%x", "{0}{1}", "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd", "PRIVMSG #x :hi",
         "\U0001f525", "Zo\u00eb", "\u65e5\u672c", "+", " + " * 20, "volcano", "pizza + volcano", "daisy",
         "\x7f", "\ufffd", "\U000e0001", "a" * 5000, "\u0000volcano", "NaN", "-1", "1e999"]


def hostile_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.5:
            parts.append(rng.choice(NASTY))
        elif r < 0.8:
            parts.append("".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 12))))
        else:
            parts.append("".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(1, 40))))
    return "".join(parts)


def hostile_value(rng: random.Random):
    return rng.choice([hostile_text(rng), hostile_text(rng), None, 0, -1, 1e308, True, [], {},
                       ["volcano"], {"text": "volcano"}, "volcano", "x" * rng.randint(0, 20_000)])


def hostile_json(rng: random.Random) -> str:
    """A JSON document, usually an object with hostile field values, sometimes deep or odd."""
    r = rng.random()
    if r < 0.05:
        depth = rng.choice([10, 500, 5000, 50_000])
        return "[" * depth + "]" * depth
    if r < 0.1:
        return json.dumps(hostile_value(rng))
    doc = {k: hostile_value(rng) for k in rng.sample(["text", "user", "type", "id", "__proto__"], rng.randint(0, 5))}
    if rng.random() < 0.7:
        doc["type"] = rng.choice(["request", "ping", "request", hostile_text(rng)])
    return json.dumps(doc, ensure_ascii=rng.random() < 0.5)


def hostile_bytes(rng: random.Random) -> bytes:
    """A body that is not even well-formed: cut JSON, invalid UTF-8, raw surrogates, noise."""
    doc = hostile_json(rng).encode("utf-8", "surrogatepass")
    r = rng.random()
    if r < 0.3:
        return doc[: rng.randint(0, len(doc))]
    if r < 0.6:
        return doc + bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(1, 8)))
    return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 300)))


def clean_strings(value) -> bool:
    """Every string in the published state is printable: no controls, surrogates, bidi marks."""
    if isinstance(value, str):
        return all(unicodedata.category(c) not in ("Cc", "Cs", "Cf", "Co", "Cn") for c in value)
    if isinstance(value, dict):
        return all(clean_strings(k) and clean_strings(v) for k, v in value.items())
    if isinstance(value, list):
        return all(clean_strings(v) for v in value)
    return True


async def fuzz_http(base: str, rng: random.Random, statuses: dict) -> None:
    async def one(session, kind):
        if kind == "json":
            body = hostile_json(rng).encode("utf-8", "surrogatepass")  # lone surrogates as raw bytes
            req = session.post(base + "/api/request", data=body, headers={"Content-Type": "application/json"})
        elif kind == "bytes":
            ctype = rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])
            req = session.post(base + "/api/request", data=hostile_bytes(rng), headers={"Content-Type": ctype})
        else:
            q = urllib.parse.quote(hostile_text(rng).encode("utf-8", "surrogatepass"), safe="")
            req = session.get(f"{base}/api/classes?q={q}")
        async with req as r:
            await r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for kind in ("json", "bytes", "classes"):
            for start in range(0, PER_KIND, 20):  # 20 at a time
                await asyncio.gather(*(one(session, kind) for _ in range(min(20, PER_KIND - start))))


async def fuzz_ws(url: str, rng: random.Random, closes: dict) -> int:
    """Hostile websocket messages; a connection the server closes (flood, size) is reopened."""
    sent = 0
    while sent < PER_KIND:
        try:
            async with connect(url, max_size=None, open_timeout=20) as ws:
                for _ in range(15):  # under the flood guard's burst: most messages get answers
                    r = rng.random()
                    msg = hostile_json(rng) if r < 0.7 else hostile_bytes(rng) if r < 0.85 else hostile_text(rng)
                    if isinstance(msg, str):
                        msg = msg.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                    await ws.send(msg)
                    sent += 1
                await ws.close()
                closes[1000] = closes.get(1000, 0) + 1
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            closes[code] = closes.get(code, 0) + 1
        except InvalidStatus as e:  # over the per-IP cap while old connections wind down
            closes[e.response.status_code] = closes.get(e.response.status_code, 0) + 1
            await asyncio.sleep(0.2)
    return sent


def dreamed_frames(server) -> float:
    metrics = server.get("/metrics")[2].decode()
    return float(re.search(r"^dreamstream_frames_total (\S+)", metrics, re.M).group(1))


@pytest.mark.parametrize("rtmp", [False, True], ids=["plain", "rtmp"])
def test_hostile_input_in_bulk_changes_nothing(tmp_path, rtmp):
    ingest, extra = None, []
    if rtmp:
        port = free_port()
        ingest = listen(port, tmp_path / "pushed.flv")
        extra = ["--rtmp", f"rtmp://127.0.0.1:{port}/live/fuzz", "--output-size", "320x180"]
    server = start_server(tmp_path, CONFIG, extra)
    try:
        frames_before = dreamed_frames(server)
        rng = random.Random(7)
        statuses, closes = {}, {}
        t0 = time.monotonic()

        async def run():
            await asyncio.gather(fuzz_http(server.base, rng, statuses), fuzz_ws(server.ws, rng, closes))

        asyncio.run(run())
        print(f"fuzz ({'rtmp' if rtmp else 'plain'}): {3 * PER_KIND} HTTP, >= {PER_KIND} websocket in "
              f"{time.monotonic() - t0:.0f} s; statuses {statuses}; closes {closes}")
        assert not [s for s in statuses if s >= 500], statuses
        assert set(statuses) <= {200, 400, 413, 415, 429}, statuses
        assert 1011 not in closes and None not in closes, closes
        assert server.proc.poll() is None
        time.sleep(1.5)
        assert server.get_json("/healthz")["ok"]
        state = server.get_json("/api/state")
        assert clean_strings(state), state
        assert dreamed_frames(server) > frames_before  # still dreaming
    finally:
        rc, _ = stop_server(server)
        if ingest is not None:
            end(ingest)
    assert rc == 0
    log = server.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
