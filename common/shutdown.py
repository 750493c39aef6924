"""Graceful shutdown: SIGTERM/SIGINT ask the loop to stop after the message in hand.

Kubernetes sends SIGTERM before killing a pod; finishing the current message, flushing the producer
and committing offsets then leaves no half-done work and no duplicate on restart.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class GracefulShutdown:
    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> GracefulShutdown:
        """Install handlers (main thread only; a no-op elsewhere, where the owner calls ``request``)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self._event.set()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)
