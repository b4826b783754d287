"""/healthz: 200 while dreamed frames flow, 503 when the dream loop stalled (or never started)."""
import asyncio
import json
import time

import numpy as np
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from stream.app import SERVICE, STALL_S, healthz
from stream.config import Config
from stream.service import Service


def test_healthz_reports_stalls(lite0):
    service = Service(Config(), lite0, "cpu")  # threads not started: nothing dreams
    app = web.Application()
    app[SERVICE] = service

    def check():
        resp = asyncio.run(healthz(make_mocked_request("GET", "/healthz", app=app)))
        return resp.status, json.loads(resp.body)

    assert check() == (503, {"ok": False, "frame_age_s": None})
    service.keyframes.publish(np.zeros((8, 8, 3), np.uint8))
    status, body = check()
    assert status == 200 and body["ok"] and body["frame_age_s"] < 1
    service.keyframes.latest().time = time.monotonic() - STALL_S - 1  # the loop stopped a while ago
    status, body = check()
    assert status == 503 and not body["ok"] and body["frame_age_s"] > STALL_S
