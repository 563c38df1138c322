"""Many threads racing on one object, trial after trial, each with its own connection."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

BARRIER_TIMEOUT = 120.0


class Racers:
    """``size`` threads that stay up across trials and start each trial together.

    Threads (and so database connections) are reused: opening 32 new PostgreSQL
    connections per trial would cost more than the race itself. ``race(work)`` runs
    ``work(index)`` in every thread, released by one barrier, and returns the results
    (an exception raised by ``work`` is returned in its place).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._start = threading.Barrier(size + 1, timeout=BARRIER_TIMEOUT)
        self._done = threading.Barrier(size + 1, timeout=BARRIER_TIMEOUT)
        self._work: Callable[[int], Any] | None = None
        self._results: list[Any] = [None] * size
        self._threads = [
            threading.Thread(target=self._loop, args=(index,), daemon=True, name=f"racer-{index}")
            for index in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def _loop(self, index: int) -> None:
        try:
            while True:
                self._start.wait()
                work = self._work
                if work is None:
                    return
                try:
                    self._results[index] = work(index)
                except Exception as exc:  # returned to the test, which asserts on it
                    self._results[index] = exc
                self._done.wait()
        except threading.BrokenBarrierError:
            return
        finally:
            connections.close_all()

    def race(self, work: Callable[[int], Any]) -> list[Any]:
        self._work = work
        self._results = [None] * self.size
        self._start.wait()
        self._done.wait()
        return list(self._results)

    def close(self) -> None:
        self._work = None
        with contextlib.suppress(threading.BrokenBarrierError):
            self._start.wait()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> Racers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
