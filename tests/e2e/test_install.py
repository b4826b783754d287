"""`pip install .` gives a working program: the wheel, installed into a fresh venv outside the
checkout, serves the page and renders from another folder (the page, the presets and the prior
come from inside the installed package). The heavy dependencies (torch, ...) are shared with
the test venv through a .pth line instead of downloaded again; the project itself is only the
wheel's copy."""
import json
import os
import signal
import site
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])
    return r


def test_wheel_installed_elsewhere_serves_and_renders(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(ROOT)])
    (wheel,) = (tmp_path / "dist").glob("dreamstream-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    fresh_site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (fresh_site / "shared_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exe = str(venv / "bin" / "dreamstream")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    where = run([str(py), "-c", "import stream, dreamer; print(stream.__file__, dreamer.__file__)"],
                cwd=elsewhere, env=env).stdout
    assert str(ROOT) not in where, where  # the wheel's copy, not the checkout
    assert "963" in run([exe, "classes", "pizza"], cwd=elsewhere, env=env).stdout
    run([exe, "render", "--class", "volcano", "--frames", "2", "--size", "64x48", "--output", "v.png"],
        cwd=elsewhere, env=env)
    assert (elsewhere / "v.png").stat().st_size > 0

    port, ws_port = free_port(), free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([exe, "serve", "--port", str(port), "--ws-port", str(ws_port), "--size", "64x48",
                             "--device", "cpu"], cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/frame.jpg", timeout=2) as r:
                    if r.status == 200 and r.headers["Content-Type"] == "image/jpeg":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        with urllib.request.urlopen(base + "/", timeout=5) as r:
            assert b'<img id="stream"' in r.read()
        with urllib.request.urlopen(base + "/static/app.js", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(base + "/config.json", timeout=5) as r:
            assert json.loads(r.read())["size"] == [64, 48]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
