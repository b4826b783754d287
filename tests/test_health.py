"""Health from both buses: 200 while dreamed and shown frames flow, 503 when either stalls."""
import asyncio
import json
import time

import numpy as np
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dreamer.loop import DreamSettings
from stream.config import ServeSettings
from stream.front.app import SERVE, SERVICE, healthz
from stream.front.service import About, Service
from stream.queue.requests import QueuePolicy, RequestQueue
from stream.spine.pipeline import DREAM_STALL_S, SHOWN_STALL_S, Pipeline


def build(model) -> Service:
    queue = RequestQueue(QueuePolicy(), ["volcano"])
    pipeline = Pipeline(model, DreamSettings(size=(64, 48)), 0, queue, output_fps=25, jpeg_quality=80)
    return Service(pipeline, About("efficientnet_lite0", "cpu", (64, 48)))


def check(service):
    app = web.Application()
    app[SERVICE], app[SERVE] = service, ServeSettings()
    resp = asyncio.run(healthz(make_mocked_request("GET", "/healthz", app=app)))
    return resp.status, json.loads(resp.body)


def test_healthz_reports_a_stall_of_either_bus(lite0):
    service = build(lite0)  # threads not started: nothing flows
    status, body = check(service)
    assert status == 503 and body["frame_age_s"] is None and body["shown_age_s"] is None
    frame = np.zeros((8, 8, 3), np.uint8)
    service.pipeline.dreamed.publish(frame)
    service.pipeline.shown.publish(frame)
    status, body = check(service)
    assert status == 200 and body["ok"] and body["frame_age_s"] < 1
    assert body["workers"] == {"dream-loop": "idle", "presenter": "idle"}
    service.pipeline.shown.latest().time = time.monotonic() - SHOWN_STALL_S - 1  # the presenter stopped
    status, body = check(service)
    assert status == 503 and body["shown_age_s"] > SHOWN_STALL_S
    service.pipeline.shown.publish(frame)
    service.pipeline.dreamed.latest().time = time.monotonic() - DREAM_STALL_S - 1  # the dream stopped
    assert check(service)[0] == 503


def test_a_killed_presenter_job_is_restarted_and_health_shows_the_stall_meanwhile(lite0):
    service = build(lite0)
    p = service.pipeline
    p.presenter.backoff.first = p.presenter.backoff.delay = 0.5
    crash = p.presenter.job

    def fails_once():
        p.presenter.job = crash
        raise RuntimeError("injected presenter failure")

    p.presenter.job = fails_once
    service.start()
    try:
        p.dreamed.publish(np.zeros((48, 64, 3), np.uint8))  # the presenter needs a first frame
        deadline = time.monotonic() + 5
        while p.presenter.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.presenter.restarts == 1
        status, body = check(service)
        assert status == 503 and body["workers"]["presenter"] == "restarting"
        assert p.shown.wait(0, timeout=10) is not None  # back, showing frames again
        deadline = time.monotonic() + 5
        while check(service)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert check(service)[0] == 200
    finally:
        service.stop()
