"""One writer per output: a run claims each output file or folder it writes, and a second run
(another terminal, an hourly cron batch that overlaps the last one) that names the same output is
told so instead of writing into the same file, which would leave it garbled while both runs
report success.

The claim is an advisory lock (``flock``) on a small hidden file beside the output
(``.NAME.nirvision-lock``; inside it for a folder of pictures). The lock belongs to the open file,
so a run that is killed (SIGKILL, a power cut) leaves no claim behind; the file, which says
which process held it, is removed when the output is finished. A killed run's file stays until
a run claims and finishes that output, or deletes it (``--keep``: ``remove_unheld``). Where
``fcntl`` does not exist (Windows) outputs are not claimed.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".nirvision-lock"


class OutputBusy(InputError):
    """The output is being written by another run (its process id in ``pid``, when known)."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def lock_path(output: str | Path, folder: bool = False) -> Path:
    """The lock file of ``output``: beside a file, inside a folder."""
    output = Path(output)
    return output / LOCK_SUFFIX if folder else output.parent / f".{output.name}{LOCK_SUFFIX}"


class OutputClaim:
    """Holds the claim on one output until ``release()``; ``OutputBusy`` if another run has it."""

    def __init__(self, output: str | Path, what: str = "output", folder: bool = False):
        self.output = Path(output)
        self.path = lock_path(output, folder)
        self._fd: int | None = None
        if fcntl is None:
            return
        for _ in range(5):  # the holder may remove the file between our open and our lock: open it again
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # a folder we cannot write: opening the output will say so
                log.debug("output %s: no claim (%s)", self.output, exc)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _holder(fd)
                os.close(fd)
                held_by = f"another nirvision run (process {pid})" if pid else "another nirvision run"
                raise OutputBusy(f"{what} {self.output}: {held_by} is writing it; expected an output no other run writes "
                                 "(wait for that run to end, or choose another output)", pid) from None
            if not _still_named(fd, self.path):  # removed (or replaced) by the run that held it: ours is a stale inode
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
            self._fd = fd
            return
        log.debug("output %s: no claim (its lock file kept changing)", self.output)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the output up (removing the lock file first, while still holding it)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("output %s: could not remove %s: %s", self.output, self.path, exc)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def remove_unheld(output: str | Path, folder: bool = False) -> bool:
    """Remove the lock file of ``output`` when no run holds it (left by a killed run; taken and
    removed while held, as ``release`` does, so that no run is claiming it meanwhile); True when
    removed. One that a run holds stays."""
    path = lock_path(output, folder)
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:  # none (the usual case), or not ours to open
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a run is writing that output
        if not _still_named(fd, path):
            return False  # replaced meanwhile: the new one is another run's
        try:
            path.unlink()
        except OSError as exc:
            log.debug("output %s: could not remove %s: %s", output, path, exc)
            return False
        return True
    finally:
        os.close(fd)


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed or replaced since)."""
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def _holder(fd: int) -> int | None:
    """The process id a claim's file names (None when it cannot be read yet)."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None
