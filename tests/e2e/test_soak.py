"""scripts/soak.py for two minutes: the whole long-run harness works (real serve, nginx, ngircd,
an audience, three faults) and writes what it promises. Its figures are the README's, from
an hour's run; here only their shape and sanity are checked, never a timing."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from peers import NGINX, NGIRCD, RTMP_MODULE

SOAK = Path(__file__).parents[2] / "scripts" / "soak.py"
SAMPLE_KEYS = {"t_s", "rss_mb", "fds", "threads", "cpu_pct", "dream_fps", "shown_fps", "queue", "viewers",
               "listeners", "encoder", "chat", "health", "restarts", "clips", "errors", "tracebacks", "warnings"}

if not NGINX or not RTMP_MODULE.exists() or not NGIRCD:
    pytest.skip("needs Debian nginx, libnginx-mod-rtmp and ngircd (make test installs them as root)",
                allow_module_level=True)


def test_a_two_minute_soak_samples_recovers_from_its_faults_and_plots(tmp_path):
    run = subprocess.run([sys.executable, str(SOAK), "--minutes", "2", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((tmp_path / "soak.json").read_text())
    samples, faults, summary = out["samples"], out["faults"], out["summary"]
    assert len(samples) >= 8 and all(set(s) == SAMPLE_KEYS for s in samples), samples[:2]
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 and s["threads"] > 0 for s in samples)
    assert [f["kind"] for f in faults] == ["ingest restart", "irc restart", "stalled crowd"]
    assert all(f["recovered_s"] is not None for f in faults), faults  # each came back (within a minute)
    assert summary["faults"] == {"count": 3, "recovered": 3, "max_recovery_s": max(f["recovered_s"] for f in faults)}
    assert summary["log"]["tracebacks"] == 0 and summary["log"]["errors"] == 0, summary["log"]
    assert summary["unplanned_restarts"] == {} and not summary["server_died"]
    assert summary["exit"]["code"] == 0 and summary["stopping_heard"]
    assert summary["watchdog"]["pings"] > 0 and summary["watchdog"]["ready_after_s"] is not None
    sent = summary["audience"]["sent"]
    assert sent["chat"] + sent["websocket"] + sent["post"] > 0 and sent["mjpeg_visits"] > 0
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "server.log").exists()
