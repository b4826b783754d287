"""Worker: a named daemon thread with a stop event, for the dream loop, presenter and encoder."""
from __future__ import annotations

import threading


class Worker:
    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Blocking: call from a worker thread (asyncio.to_thread), never on the event loop."""
        self._stop.set()
        self._thread.join(timeout)

    def run(self) -> None:
        raise NotImplementedError
