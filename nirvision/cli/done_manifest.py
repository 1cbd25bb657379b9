"""``--skip-done``'s record of finished outputs: ``.nirvision-done.json`` in each output folder.

Counting packets cannot tell an output that is complete from one that is not in two cases a
recorded export meets: a source with an undecodable packet is written one frame short for good
(so counting redid it on every rerun), and an output of the same name may come from another
source (``cam.avi`` beside ``cam.mp4``; an NVR that reuses names), whose frame count can match.
So each output of a run that ended normally (the end of its input: not a signal, a failure or
a closed preview) is recorded with what made it: the source's resolved path, size and
modification time, the output's own size and modification time (an output rewritten since, by
an interrupted run or by hand, no longer matches, and its entry says nothing), the frames it
got and the range that shaped it (``--start``, ``--end`` / ``--duration``, ``--max-frames``).

An entry is trusted only while the output still matches it; a missing or unreadable manifest
is no error: outputs are then judged by their frame counts (``batch.already_done``), as those
of versions before it are. The file is replaced whole (a temporary file, then ``os.replace``),
so a reader never sees half of it; two runs writing into one folder at once may lose each
other's entries, which only means a recount.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = ".nirvision-done.json"
VERSION = 1
EPS_S = 1e-6  # range ends equal up to rounding are one range


def _load(folder: Path) -> dict[str, dict]:
    """The entries recorded in ``folder`` by output file name; {} where there is no manifest or
    it cannot be read (said once a run: the outputs are then counted)."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _warn_once(path, f"cannot be read ({exc})")
        return {}
    entries = data.get("outputs") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        _warn_once(path, "holds no outputs")
        return {}
    return {name: e for name, e in entries.items() if isinstance(e, dict)}


_warned: set[Path] = set()


def _warn_once(path: Path, what: str) -> None:
    if path not in _warned:
        _warned.add(path)
        log.warning("%s: %s; its outputs are judged by their frame counts", path, what)


def _save(folder: Path, entries: dict[str, dict]) -> None:
    path = folder / MANIFEST
    tmp = folder / f"{MANIFEST}.{os.getpid()}.tmp"  # one a process: runs beside each other do not write into one
    try:
        tmp.write_text(json.dumps({"version": VERSION, "outputs": entries}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        _warned.discard(path)
    except OSError as exc:
        log.warning("%s: cannot be written (%s); --skip-done will count the frames of the outputs in %s", path, exc.strerror or exc, folder)
        try:
            tmp.unlink()
        except OSError:
            pass


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _range(start: float | None, end: float | None, max_frames: int | None) -> dict:
    return {"start": float(start or 0.0), "end": None if end is None else float(end), "max_frames": max_frames}


def _range_text(entry: dict) -> str:
    parts = []
    if entry.get("start"):
        parts.append(f"--start {entry['start']:g}")
    if entry.get("end") is not None:
        parts.append(f"--end {entry['end']:g}")
    if entry.get("max_frames") is not None:
        parts.append(f"--max-frames {entry['max_frames']}")
    return " ".join(parts) or "the whole video"


def source_state(src: Path) -> tuple[int, int] | None:
    """``src``'s size and modification time, taken before it is read and handed to ``record``:
    a recording still being written while it ran then no longer matches, and is redone."""
    return _stat(src)


def record(out: Path, src: Path, summary: dict, start: float | None = None, end: float | None = None,
           max_frames: int | None = None, before: tuple[int, int] | None = None) -> bool:
    """Note ``out`` as finished from ``src`` (as it was ``before`` the run, ``source_state``;
    default: as it is now) when ``summary`` (the engine's) says the run ended normally; an output
    cut into ``--segment`` pieces is not one file and is left out. True when recorded."""
    if summary.get("stopped_by") != "end of input" or summary.get("pieces") or not summary.get("frames_out"):
        return False
    have, source = _stat(out), before or _stat(src)
    if have is None or source is None:
        return False
    entries = _load(out.parent)
    entries[out.name] = {"source": str(src.resolve()), "source_size": source[0], "source_mtime_ns": source[1],
                         "output_size": have[0], "output_mtime_ns": have[1], "frames": summary["frames_out"],
                         "decode_errors": summary.get("decode_errors", 0), **_range(start, end, max_frames),
                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _save(out.parent, entries)
    return True


def forget(out: Path) -> None:
    """Drop ``out``'s entry: it is about to be written again (should the run not end, no entry
    describes the file it leaves)."""
    entries = _load(out.parent)
    if entries.pop(out.name, None) is not None:
        _save(out.parent, entries)


def verdict(src: Path, out: Path, max_frames: int | None, start: float | None = None, end: float | None = None) -> tuple[bool, str] | None:
    """What the manifest says of ``out`` as ``src``'s output for this range: (done, why), or
    None where it says nothing (no entry, one of an output rewritten since it was recorded, or
    one not as this module writes them)."""
    entry = _load(out.parent).get(out.name)
    have = _stat(out)
    if entry is None or have is None or [entry.get("output_size"), entry.get("output_mtime_ns")] != list(have):
        return None
    try:
        return _judge(entry, src, out, _range(start, end, max_frames))
    except (TypeError, ValueError, KeyError):  # an entry edited by hand, or by a version to come
        return None


def _judge(entry: dict, src: Path, out: Path, want: dict) -> tuple[bool, str]:
    source = _stat(src)
    recorded = Path(entry["source"]) if isinstance(entry["source"], str) else None
    if recorded is None or not isinstance(entry["frames"], int):
        raise ValueError("not an entry")
    unchanged = source is not None and [entry.get("source_size"), entry.get("source_mtime_ns")] == list(source)
    if recorded != src.resolve() and not (recorded.name == src.name and unchanged):  # the same file, moved or remounted
        return False, f"{out} was colorized from another source, {recorded}"
    if not unchanged:
        return False, f"{src} changed since {out} was colorized from it"
    frames, cap, end = entry["frames"], entry.get("max_frames"), entry.get("end")
    same_range = abs(float(entry.get("start") or 0.0) - want["start"]) <= EPS_S and (
        end is None if want["end"] is None else end is not None and abs(float(end) - want["end"]) <= EPS_S)
    # a cap the run did not reach, or one at least this run's, left out nothing this run writes
    covers = cap is None or frames < cap or (want["max_frames"] is not None and want["max_frames"] <= cap)
    if not (same_range and covers):
        return False, f"{out} holds another range ({_range_text(entry)})"
    skipped = entry.get("decode_errors") or 0
    return True, f"{out} was finished from it: {frames} frames" + (f", {skipped} undecodable" if skipped else "")
