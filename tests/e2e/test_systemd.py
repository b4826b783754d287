"""`serve` under a service manager: the notify protocol against a datagram socket the test binds
(as systemd does for Type=notify), and a SIGTERM that ends the process within 2 s however
its clients behave: MJPEG viewers and websocket clients that stopped reading included."""
import json
import multiprocessing as mp
import signal
import socket
import time

from loadtest import client_process

from .conftest import TEST_CONFIG, start_server

# 1280x720 shown frames fill a stalled viewer's socket within a second or two, so its writes
# are blocked when the signal comes; the test's clients share one address, hence the cap.
CONFIG = TEST_CONFIG.replace("max_ws_per_ip = 6", "max_ws_per_ip = 40")


def datagrams(sock, until: str, timeout: float = 20) -> list[str]:
    got, end = [], time.monotonic() + timeout
    while until not in got and time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode().split("\n")[0])
        except TimeoutError:
            break
    return got


def attached(server, mjpeg: int, websockets: int, timeout: float = 30) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = server.get_json("/api/state")
        if state["viewers"] >= mjpeg and state["stream"]["listeners"] >= websockets:
            return True
        time.sleep(0.3)
    return False


def test_systemd_hears_ready_watchdog_stopping_and_stalled_clients_do_not_hold_the_exit(tmp_path):
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(tmp_path / "notify"))
    server = start_server(tmp_path, CONFIG, ["--output-size", "1280x720"],
                          env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"})
    clients = mp.Process(target=client_process, args=(server.base, server.ws, 4, 4, 0, 60.0, 0, mp.Queue(), 4, 6),
                         daemon=True)
    try:
        assert datagrams(manager, "READY=1")[-1] == "READY=1"  # the first frame is shown (healthz said so)
        assert datagrams(manager, "WATCHDOG=1", timeout=5)[-1] == "WATCHDOG=1"  # healthy: pinged
        clients.start()
        assert attached(server, 8, 10), json.dumps(server.get_json("/api/state"))[:500]
        time.sleep(3)  # the stalled viewers' sockets fill up
        manager.setblocking(False)
        while True:  # read what is queued, as systemd does: a full queue (10 datagrams) drops the rest
            try:
                manager.recv(4096)
            except BlockingIOError:
                break
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rc = server.proc.wait(15)
        took = time.monotonic() - t0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        if clients.is_alive():
            clients.kill()
    log = server.log.read_text()
    assert rc == 0 and took < 2.0, f"exit {rc} after {took:.1f} s\n{log[-2000:]}"
    assert "STOPPING=1" in datagrams(manager, "STOPPING=1", timeout=1)
    assert "stopped in" in log and "Traceback" not in log, log[-2000:]
    manager.close()
