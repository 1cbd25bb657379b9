"""How live sources retry: a number of attempts (or forever) with exponential backoff."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

from ..errors import InputError


class StreamLost(RuntimeError):
    """A live source disconnected and every reconnection attempt failed."""


@dataclass
class ReconnectPolicy:
    """``attempts`` connection tries after a failure (``None``: forever), waiting
    ``initial_delay`` seconds before the first, doubling up to ``max_delay``."""

    attempts: int | None = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def delays(self) -> Iterator[float]:
        """The waits before each retry; ends when the attempts are spent."""
        delay = self.initial_delay
        n = 0
        while self.attempts is None or n < self.attempts:
            yield delay
            n += 1
            delay = min(delay * 2, self.max_delay)

    def describe(self) -> str:
        return "forever" if self.attempts is None else f"{self.attempts} time(s)"


def parse_reconnect(value: str | int | None) -> int | None:
    """``--reconnect``: a count >= 0 or ``forever`` (returned as None)."""
    if value is None:
        return 3
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in ("forever", "inf", "always"):
        return None
    if text.isdigit():
        return int(text)
    raise InputError(f"--reconnect {value!r}: expected a number of attempts (0 or more) or 'forever'")


def wait(stop: threading.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    return stop.wait(seconds)
