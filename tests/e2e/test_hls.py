"""Fan-out through a real nginx with the RTMP module: the README's recipe (configs/nginx-hls.conf)
as a user runs it, with only its ports and /tmp paths moved so that tests can run side by side."""
import subprocess
import time
import urllib.request

import cv2
import imageio_ffmpeg
import pytest
from peers import NGINX, RTMP_MODULE, start_nginx, stop

from .conftest import TEST_CONFIG, free_port, start_server, stop_server

if not NGINX or not RTMP_MODULE.exists():
    pytest.skip("needs Debian nginx and libnginx-mod-rtmp (make test installs them as root)", allow_module_level=True)


def wait_for_playlist(url: str, timeout: float = 90) -> bytes:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read()
                if body.count(b"#EXTINF") >= 2:  # two fragments: a player can start
                    return body
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never listed two fragments")


def test_nginx_re_serves_the_push_as_hls_that_ffmpeg_plays(tmp_path):
    rtmp_port, http_port = free_port(), free_port()
    proxy = start_nginx(tmp_path, rtmp_port, http_port)  # the recipe, its ports and paths moved (scripts/peers.py)
    server = None
    try:
        server = start_server(tmp_path, TEST_CONFIG, ["--rtmp", f"rtmp://127.0.0.1:{rtmp_port}/live/dream",
                                                      "--output-size", "640x360"])
        url = f"http://127.0.0.1:{http_port}/hls/dream.m3u8"
        playlist = wait_for_playlist(url)
        assert b"#EXTM3U" in playlist
        frame = tmp_path / "played.png"
        played = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                                 "-i", url, "-frames:v", "1", str(frame)], capture_output=True, timeout=60)
        assert played.returncode == 0, played.stderr.decode()
        picture = cv2.imread(str(frame))
        assert picture.shape == (360, 640, 3)  # the output size, through nginx, unchanged
        assert picture.std() > 5  # a dream, not a black frame
    finally:
        if server:
            rc, _ = stop_server(server)
            assert rc == 0
        stop(proxy)
    assert proxy.returncode == 0, (tmp_path / "nginx.log").read_text()
