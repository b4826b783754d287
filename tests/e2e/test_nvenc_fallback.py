"""NVENC asked for where it cannot open (this machine: PyAV lists h264_nvenc, no NVIDIA
driver): `serve --rtmp` says so in one log line and streams with libx264."""
import av

from .conftest import TEST_CONFIG, free_port, start_server, stop_server
from .test_rtmp import end, listen, wait_for_bytes


def test_nvenc_that_cannot_open_falls_back_to_libx264_and_the_stream_goes_on(tmp_path):
    assert "h264_nvenc" in av.codecs_available  # listed, as on any machine: only opening it tells
    port = free_port()
    received = tmp_path / "received.flv"
    ingest = listen(port, received)
    config = TEST_CONFIG + '[rtmp]\nencoder = "nvenc"\nbitrate_k = 800\n'
    server = start_server(tmp_path, config, ["--rtmp", f"rtmp://127.0.0.1:{port}/live/sk_live_do_not_print_me"])
    try:
        wait_for_bytes(received, 300_000)  # ~3 s at 800 kb/s
        assert server.get_json("/api/state")["stream"]["encoder"]["state"] == "live"
        end(ingest)
    finally:
        rc, _ = stop_server(server)
        if ingest.poll() is None:
            ingest.kill()
    assert rc == 0
    log = server.log.read_text()
    lines = [line for line in log.splitlines() if "NVENC" in line]
    assert len(lines) == 1 and "cannot be opened" in lines[0] and "libx264 instead" in lines[0], log[-2000:]
    assert "Traceback" not in log
    with av.open(str(received)) as c:
        video = c.streams.video[0]
        assert video.codec_context.name == "h264" and (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert sum(1 for _ in c.decode(video)) > 30  # a second and more of pictures got through
