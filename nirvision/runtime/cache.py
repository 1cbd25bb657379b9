"""On-disk cache of compiled artefacts (ONNX files, quantized models, TensorRT engines).

An entry is found by a key of everything that makes an artefact valid: the weights' hash,
the input shape, the precision, the torch / TensorRT / ONNX Runtime versions and the GPU name
(vs-mlrt keys its TensorRT engines the same way). Each entry is a file plus a JSON sidecar
holding the key and the file's SHA-256; an entry whose sidecar is unreadable, of another key,
or whose file does not hash to the recorded digest (a torn write, a corrupt file) is removed
and rebuilt, never trusted. Writes go through temporary files and atomic renames: the old
sidecar goes first, then the file moves into place, then its sidecar; so a file without a
sidecar (or a sidecar without its file) may be a write in progress in another process, and
is a miss that deletes nothing (the next store replaces both).

The cache lives in ``$NIRVISION_CACHE`` or else ``~/.cache/nirvision``. Where that default
cannot be written (a service account whose home does not exist), artefacts go to a private
folder of this user under the system's temporary folder, with a warning naming
``$NIRVISION_CACHE``. A cache named by the user (``--cache``, ``$NIRVISION_CACHE``) that cannot be
written still serves what it holds (built ahead of time by ``nirvision export``); building
what it lacks is an :class:`InputError` that says how to fix it.

Each cache remembers what it served in this process (``history``: hit or built, and how long
the build took), so ``nirvision export`` can say where each file is and whether it was built.
A hit touches the entry's sidecar: an entry's modification time is when it was last used, and
``clear(older_than_s=...)`` (``nirvision cache clear --older-than DAYS``) removes the entries
no run has used for that long, not those built long ago and used every day. ``entries()`` and
``clear`` only look at names the cache writes (``KIND/DIGEST.SUFFIX`` and its sidecar), so a
cache folder pointed at a folder holding other files leaves those alone.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from ..errors import InputError

log = logging.getLogger(__name__)

ENV_VAR = "NIRVISION_CACHE"


def default_cache_dir() -> Path:
    """``$NIRVISION_CACHE`` when set, else ``~/.cache/nirvision``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nirvision"


def _nearest_existing(path: Path) -> Path:
    at = path
    while not at.exists() and at != at.parent:
        at = at.parent
    return at


def _writable(path: Path) -> bool:
    """Whether ``path`` is, or could be made as, a folder this process can write in."""
    at = _nearest_existing(path)
    return at.is_dir() and os.access(at, os.W_OK | os.X_OK)


def private_temp_cache() -> Path:
    """A folder of this user's own under the temporary folder (kept across runs until the
    machine cleans it), made with mode 0700; one that exists but is a link, or is another
    user's, or open to others, is not used (a fresh private folder is made instead)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"nirvision-cache-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == uid) and not st.st_mode & 0o077:
            return path
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix=f"nirvision-cache-{uid}-"))


def weights_hash(module: torch.nn.Module) -> str:
    """SHA-256 over the module's state dict (names, dtypes, shapes and values), in a stable order."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _dist_version(*names: str) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def gpu_name(device: torch.device | str | None) -> str:
    """The CUDA device's name, or ``cpu``."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type != "cuda":
        return "cpu"
    return torch.cuda.get_device_name(dev)


@dataclass(frozen=True)
class ArtefactKey:
    """Everything an artefact depends on; ``digest`` names the cache entry."""

    kind: str  # "onnx", "onnx-int8", "tensorrt", ...
    weights: str  # weights_hash of the network
    shape: tuple[int, ...]  # the input shape it was built for
    precision: str
    gpu: str = "cpu"
    torch: str = field(default_factory=lambda: torch.__version__)
    tensorrt: str = field(default_factory=lambda: _dist_version("tensorrt", "tensorrt-cu13", "tensorrt_cu13", "tensorrt-cu12", "tensorrt_cu12"))
    torch_tensorrt: str = field(default_factory=lambda: _dist_version("torch-tensorrt", "torch_tensorrt"))
    onnxruntime: str = field(default_factory=lambda: _dist_version("onnxruntime", "onnxruntime-gpu"))
    extra: str = ""  # builder options that change the artefact (opset, calibration data, ...)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:24]

    def with_(self, **changes) -> "ArtefactKey":
        return replace(self, **changes)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@dataclass(frozen=True)
class CacheUse:
    """An artefact this process got from the cache: found (``built`` False) or built now."""

    path: Path
    built: bool
    seconds: float = 0.0  # the build's wall time


@dataclass(frozen=True)
class CacheEntry:
    """An entry on disk: the artefact (a file, or a folder of engines ONNX Runtime's TensorRT
    provider keeps) and what its sidecar says."""

    kind: str
    path: Path
    bytes: int  # the artefact and its sidecar
    used: float  # the newest modification time of the two: when it was built or last found
    shape: tuple[int, ...] | None = None
    precision: str | None = None
    complete: bool = True  # False: a file or a sidecar alone, or a temporary file of a write

    @property
    def size(self) -> str:
        """The input size it was built for, WIDTHxHEIGHT (batch N when not 1), or ``-``."""
        if not self.shape or len(self.shape) != 4:
            return "-"
        n, _, h, w = self.shape
        return f"{w}x{h}" + (f" batch {n}" if n != 1 else "")


_DIGEST = re.compile(r"[0-9a-f]{24}")
_TEMPORARY = re.compile(r"\.[0-9a-f]{24}.*\.\d+\.tmp.*")  # store()'s temporary files (and their sidecars)
ORPHAN_AGE_S = 3600.0  # a half entry or temporary file younger than this may be another process's write in progress


def _tree_size(path: Path) -> tuple[int, float]:
    """Bytes under ``path`` and the newest modification time (a file or a folder)."""
    try:
        st = path.stat()
    except OSError:
        return 0, 0.0
    if not path.is_dir():
        return st.st_size, st.st_mtime
    total, newest = 0, st.st_mtime
    for p in path.rglob("*"):
        try:
            s = p.stat()
        except OSError:
            continue
        newest = max(newest, s.st_mtime)
        total += s.st_size if p.is_file() else 0
    return total, newest


def cache_entries(root: str | Path) -> list[CacheEntry]:
    """The entries under ``root``, oldest use first: ``KIND/DIGEST.SUFFIX`` files with their
    ``.json`` sidecars, folders named by a digest (ONNX Runtime's TensorRT engines), and
    half entries and temporary files (``complete`` False). Other files are not listed."""
    root = Path(root)
    found: list[CacheEntry] = []
    try:
        kinds = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    for folder in kinds:
        try:
            names = sorted(folder.iterdir())
        except OSError:
            continue
        artefacts: list[Path] = []
        sidecars: set[Path] = set()
        for p in names:
            if p.is_symlink():
                continue
            if _TEMPORARY.fullmatch(p.name) and p.is_file():
                size, used = _tree_size(p)
                found.append(CacheEntry(folder.name, p, size, used, complete=False))
            elif p.is_dir() and _DIGEST.fullmatch(p.name):
                size, used = _tree_size(p)
                found.append(CacheEntry(folder.name, p, size, used))
            elif p.is_file() and _DIGEST.match(p.name) and p.name.endswith(".json"):
                sidecars.add(p)
            elif p.is_file() and _DIGEST.match(p.name):
                artefacts.append(p)
        # an artefact DIGEST.SUFFIX with its sidecar DIGEST.SUFFIX.json; either alone is a half entry
        pairs = [(a, a.with_name(a.name + ".json")) for a in artefacts]
        pairs += [(None, m) for m in sorted(sidecars - {meta for _, meta in pairs})]
        for artefact, meta in pairs:
            shape = precision = None
            if meta in sidecars:
                try:
                    key = json.loads(meta.read_text()).get("key", {})
                    shape, precision = tuple(key.get("shape") or ()) or None, key.get("precision")
                except (OSError, ValueError, AttributeError):
                    pass
            sizes = [_tree_size(q) for q in (artefact, meta) if q is not None and (q == artefact or q in sidecars)]
            found.append(CacheEntry(folder.name, artefact or meta, sum(b for b, _ in sizes), max((u for _, u in sizes), default=0.0),
                                    shape, precision, complete=artefact is not None and meta in sidecars))
    return sorted(found, key=lambda e: e.used)


def describe_cache(root: str | Path | None = None) -> dict:
    """What ``nirvision info`` says of the cache, without making or changing anything: the
    folder (``root``, else ``$NIRVISION_CACHE``, else the default), what named it, whether this
    user can write in it, the folder runs use (the private temporary folder where the default
    cannot be written), and the entries there: count, bytes, count by kind, and half entries."""
    named = "--cache" if root is not None else ("$" + ENV_VAR if os.environ.get(ENV_VAR) else "default")
    folder = Path(root).expanduser() if root is not None else default_cache_dir()
    at = _nearest_existing(folder)
    writable = not (at.exists() and not at.is_dir()) and _writable(folder)
    used = folder
    if not writable and named == "default":
        used = Path(tempfile.gettempdir()) / f"nirvision-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    entries = cache_entries(used)
    kinds: dict[str, int] = {}
    for e in entries:
        if e.complete:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return {"folder": str(folder), "named_by": named, "writable": writable, "runs_use": str(used),
            "entries": sum(e.complete for e in entries), "bytes": sum(e.bytes for e in entries), "kinds": kinds,
            "incomplete": sum(not e.complete for e in entries)}


def human_bytes(n: int) -> str:
    """``n`` bytes as kB / MB / GB (powers of 1000, one decimal)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class ArtefactCache:
    """Get-or-build of artefact files under a key; see the module docstring."""

    def __init__(self, root: str | Path | None = None):
        self.history: list[CacheUse] = []  # what this process got from the cache, in order
        named = root is not None or bool(os.environ.get(ENV_VAR))
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        at = _nearest_existing(self.root)  # the nearest part of the path that exists must be a folder
        if at.exists() and not at.is_dir():
            raise InputError(f"artefact cache {self.root}: {'is' if at == self.root else f'{at} is'} a file, not a folder; expected a folder "
                             "for compiled models (--cache or $NIRVISION_CACHE)")
        self.writable = _writable(self.root)
        if not self.writable and not named:
            fallback = private_temp_cache()
            log.warning("artefact cache %s cannot be written (%s is not writable by this user); using %s instead, "
                        "which the system may clean: set $%s to a folder of this user's to keep compiled models",
                        self.root, at, fallback, ENV_VAR)
            self.root, self.writable = fallback, True
        elif not self.writable:
            log.warning("artefact cache %s cannot be written by this user: it serves what it holds, and a model "
                        "not in it cannot be built", self.root)

    def path(self, key: ArtefactKey, suffix: str) -> Path:
        return self.root / key.kind / f"{key.digest}{suffix}"

    def _meta_path(self, path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def lookup(self, key: ArtefactKey, suffix: str, validate: Callable[[Path], None] | None = None) -> Path | None:
        """The entry's path when present and intact, else None. A bad entry is removed; a half
        entry (a file or a sidecar alone: maybe another process's write in progress) is left."""
        path = self.path(key, suffix)
        meta_path = self._meta_path(path)
        if not path.is_file() or not meta_path.is_file():
            if path.is_file() or meta_path.is_file():
                log.debug("cache miss %s: %s alone (a write in progress, or an interrupted one)", path,
                          "the file" if path.is_file() else "the sidecar")
            return None
        why = None
        meta_text = None
        try:
            meta_text = meta_path.read_text()
            meta = json.loads(meta_text)
            if meta.get("key") != key.to_dict():
                why = "its recorded key differs (stale)"
            elif meta.get("sha256") != file_sha256(path):
                why = "the file does not match its recorded SHA-256 (corrupt or partly written)"
            elif validate is not None:
                validate(path)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            why = f"it cannot be read ({type(exc).__name__}: {exc})"
        except Exception as exc:  # noqa: BLE001 - a validator (ORT, TensorRT) may raise anything
            why = f"it fails to load ({type(exc).__name__}: {exc})"
        if why is None:
            log.debug("cache hit %s", path)
            self.history.append(CacheUse(path, built=False))
            if self.writable:
                try:
                    os.utime(meta_path)  # last used now (see clear)
                except OSError:
                    pass
            return path
        if not path.is_file() or not meta_path.is_file() or meta_text != _read_or_none(meta_path):
            # the entry changed under us: another process is storing it; not ours to delete
            log.debug("cache miss %s: being rewritten while it was checked (%s)", path, why)
            return None
        log.warning("cache entry %s is not usable: %s; rebuilding it", path, why)
        self.remove(path)
        return None

    def store(self, key: ArtefactKey, suffix: str, write: Callable[[Path], None]) -> Path:
        """Build with ``write(tmp_path)`` and move the result into place with its sidecar."""
        path = self.path(key, suffix)
        why = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK | os.X_OK):
                why = "permission denied"
        except OSError as exc:
            why = exc.strerror or str(exc)
        if why is not None:
            raise InputError(f"artefact cache {self.root}: cannot write the {key.kind} model for input {'x'.join(map(str, key.shape))} "
                             f"in {path.parent} ({why}); expected a folder this user can write (--cache or ${ENV_VAR}), "
                             "or one where `nirvision export` has built it ahead of time")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
        start = time.perf_counter()
        try:
            write(tmp)
            if not tmp.is_file():
                raise RuntimeError(f"building {key.kind} artefact wrote nothing at {tmp}")
            meta = {"key": key.to_dict(), "sha256": file_sha256(tmp), "file": path.name}
            meta_tmp = tmp.with_name(tmp.name + ".json")
            meta_tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
            # the old sidecar first: a reader in between sees a half entry (a miss), never an
            # old sidecar beside the new file (a digest mismatch, which it would delete)
            self._meta_path(path).unlink(missing_ok=True)
            os.replace(tmp, path)
            os.replace(meta_tmp, self._meta_path(path))
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".json")):
                leftover.unlink(missing_ok=True)
        log.info("cached %s artefact %s", key.kind, path)
        self.history.append(CacheUse(path, built=True, seconds=time.perf_counter() - start))
        return path

    def get_or_build(self, key: ArtefactKey, suffix: str, write: Callable[[Path], None], validate: Callable[[Path], None] | None = None) -> Path:
        """The cached entry if intact, else a freshly built one (validated once more)."""
        found = self.lookup(key, suffix, validate)
        if found is not None:
            return found
        path = self.store(key, suffix, write)
        if validate is not None:
            validate(path)
        return path

    def entries(self) -> list[CacheEntry]:
        """The entries on disk (``cache_entries``)."""
        return cache_entries(self.root)

    def clear(self, older_than_s: float | None = None, now: float | None = None) -> tuple[list[CacheEntry], list[CacheEntry]]:
        """Remove the entries not used for ``older_than_s`` seconds (all when None); returns
        (removed, kept). Half entries and temporary files go only when older than
        ``ORPHAN_AGE_S`` (younger ones may be another process's write in progress). A cache this
        user cannot write is an :class:`InputError`."""
        if not self.writable:
            raise InputError(f"artefact cache {self.root}: cannot be cleared, this user cannot write in it; "
                             "expected a folder of this user's (--cache or $" + ENV_VAR + ")")
        now = time.time() if now is None else now
        removed, kept = [], []
        for entry in self.entries():
            age = now - entry.used
            old = age >= (ORPHAN_AGE_S if not entry.complete else 0.0) and (older_than_s is None or age >= older_than_s)
            if not old:
                kept.append(entry)
                continue
            if entry.path.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                self.remove(entry.path)
            (removed if not entry.path.exists() else kept).append(entry)
        return removed, kept

    def remove(self, path: Path) -> None:
        for p in (path, self._meta_path(path)):
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove cache file %s: %s", p, exc)
