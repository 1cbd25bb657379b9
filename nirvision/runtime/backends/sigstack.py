"""A thread's alternate signal stack, kept across calls into OpenVINO.

OpenVINO's CPU plugin (2026.4, measured here) sets an alternate signal stack (``sigaltstack``)
on the thread that compiles or runs a model, and when its objects are destroyed out of the
order they were made in, it puts back a stack it has already freed. Python installs its signal
handlers to run on the alternate stack, so the next signal that thread takes (Ctrl-C, systemd's
SIGTERM) lands on unmapped memory and the process dies of SIGSEGV, without finalizing its
outputs and without even faulthandler's report. Seen as: two OpenVINO backends (one with
frame-parallel copies) closed and collected, then SIGINT to the main thread.

``kept_signal_stack()`` notes the calling thread's alternate stack and puts it back after the
block (Linux only, where the layout of ``stack_t`` is known); every call of the OpenVINO backend
that makes, runs or frees OpenVINO objects runs inside it.
"""
from __future__ import annotations

import ctypes
import logging
import sys
from contextlib import contextmanager

log = logging.getLogger(__name__)

SS_ONSTACK, SS_DISABLE = 1, 2


class _Stack(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _load():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sigaltstack.argtypes = [ctypes.POINTER(_Stack), ctypes.POINTER(_Stack)]
        return libc
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None


_LIBC = _load()


def current() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack: (address, flags, size); None where unknown."""
    if _LIBC is None:
        return None
    now = _Stack()
    if _LIBC.sigaltstack(None, ctypes.byref(now)) != 0:
        return None
    return now.ss_sp or 0, now.ss_flags, now.ss_size


@contextmanager
def kept_signal_stack():
    """Run the block, then give the calling thread back the alternate signal stack it had."""
    before = current()
    try:
        yield
    finally:
        after = current()
        if before is not None and after is not None and after != before and not before[1] & SS_ONSTACK:
            address, flags, size = before
            restore = _Stack(address or None, flags & SS_DISABLE, size)
            if _LIBC.sigaltstack(ctypes.byref(restore), None) != 0:  # pragma: no cover - EPERM only while on that stack
                log.debug("could not restore the thread's signal stack (errno %d)", ctypes.get_errno())
