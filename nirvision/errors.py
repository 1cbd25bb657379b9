"""Error types that the CLI turns into one clear line and exit code 2 (bad usage or input)."""
from __future__ import annotations


class InputError(ValueError):
    """A source, sink, path or option given by the user cannot be used; the message says why."""


class InputTypeError(InputError, TypeError):
    """An InputError for a value of the wrong kind (a list or a tensor where a numpy array is
    expected); still a TypeError, as such errors were before."""


class OutputFull(InputError):
    """An output cannot be written for want of space (disk full, quota): the next would fail alike."""


def usage_errors() -> tuple[type[BaseException], ...]:
    """Every exception class that means 'the user gave something unusable' (exit code 2)."""
    from .config import ConfigError
    from .models.checkpoint import CheckpointError
    from .runtime.backends.base import BackendUnavailable
    from .api import WeightsNotFound

    return (InputError, ConfigError, CheckpointError, BackendUnavailable, WeightsNotFound)
