"""The bounded queue between engine stages: backpressure for files, drop-oldest for live sources."""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

POLL_S = 0.1  # how often a blocked put or get looks at the stop flag


class QueueStopped(Exception):
    """``put`` gave up: the queue was full when the run was asked to stop."""


class StageQueue:
    """A bounded FIFO. ``put`` blocks while full (``drop_oldest=False``) or evicts and returns
    the oldest item (``drop_oldest=True``); a blocked ``put`` gives up with ``QueueStopped``
    once ``stop`` is set, so that the caller can account for the item."""

    def __init__(self, maxsize: int, drop_oldest: bool, stop: threading.Event):
        if maxsize < 1:
            raise ValueError(f"queue size must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.stop = stop
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._woken = False

    def put(self, item: Any) -> list[Any]:
        """Add ``item``; returns the items dropped to make room (always empty without drop_oldest)."""
        dropped = []
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    dropped.append(self._items.popleft())
                    continue
                if self.stop.is_set():
                    raise QueueStopped
                self._cond.wait(POLL_S)
            self._items.append(item)
            self._cond.notify_all()
        return dropped

    def put_final(self, item: Any) -> None:
        """Add an end marker even when full: it must never be dropped or block."""
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float = POLL_S) -> Any:
        """The oldest item, or ``None`` after ``timeout`` seconds (or a ``wake``) with nothing to take."""
        with self._cond:
            if not self._items and not self._woken:
                self._cond.wait(timeout)
            self._woken = False
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def wake(self) -> None:
        """End a waiting ``get`` now (or the next one, if none waits): the consumer has
        something else to look at (a frame in flight has finished)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def drain(self) -> list[Any]:
        """Take every item left (once nothing consumes the queue any more)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)
