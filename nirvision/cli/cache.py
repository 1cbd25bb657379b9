"""``nirvision cache``: list or clear the artefact cache (ONNX files, int8 models, TensorRT engines).

    nirvision cache                          # the folder and each entry: kind, input size, precision, size, last used
    nirvision cache clear --older-than 30    # the entries no run has used for 30 days
    nirvision cache clear                    # all of them (they are built again when needed)

Every weights file, input size and library version adds an entry (an ONNX export of the lite
model is about 3.4 MB), and nothing removes them on its own: a folder of pictures of many sizes
under ``--backend onnxruntime`` leaves one per size. A cleared entry costs its build again (an
export takes seconds) the next time a run needs it. Half entries and temporary files of a write
are removed only when over an hour old (younger ones may be another process's write).
"""
from __future__ import annotations

import time

from ..errors import InputError

DAY_S = 86400.0


def add_parser(sub) -> None:
    p = sub.add_parser("cache", help="list or clear the cache of compiled models (ONNX files, int8 models, TensorRT engines)")
    p.add_argument("action", nargs="?", default="list", choices=("list", "clear"),
                   help="list (default): the folder and its entries; clear: remove entries (all, or those unused for --older-than DAYS)")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="clear: only the entries no run has used for DAYS days (e.g. 30, 0.5)")
    p.add_argument("--cache", help="artefact cache folder (default: $NIRVISION_CACHE or ~/.cache/nirvision)")
    p.set_defaults(func=run)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def run(args) -> int:
    if args.older_than is not None:
        if args.action != "clear":
            raise InputError("--older-than: only with `nirvision cache clear`")
        if not args.older_than >= 0:  # also NaN
            raise InputError(f"--older-than {args.older_than:g}: expected a number of days, 0 or more")
    from ..runtime.cache import ArtefactCache, human_bytes

    cache = ArtefactCache(args.cache)  # the folder runs use (it warns where the default cannot be written)
    if args.action == "clear":
        removed, kept = cache.clear(None if args.older_than is None else args.older_than * DAY_S)
        freed = sum(e.bytes for e in removed)
        line = f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({human_bytes(freed)}) from {cache.root.absolute()}"
        if kept:
            days = args.older_than
            why = f"used within {days:g} day{'' if days == 1 else 's'}" if days is not None else "writes in progress, or not removable"
            line += f"; kept {len(kept)} ({human_bytes(sum(e.bytes for e in kept))}: {why})"
        print(line)
        return 0
    entries = cache.entries()
    state = "writable" if cache.writable else "read only for this user"
    print(f"artefact cache {cache.root.absolute()} ({state}): {sum(e.complete for e in entries)} entries, {human_bytes(sum(e.bytes for e in entries))}")
    if entries:
        print(f"  {'kind':10s} {'input':>9s} {'prec':5s} {'bytes':>8s}  {'last used':16s}  file")
    for e in entries:
        note = "" if e.complete else "  (incomplete: a write in progress, or an interrupted one)"
        print(f"  {e.kind:10s} {e.size:>9s} {e.precision or '-':5s} {human_bytes(e.bytes):>8s}  {_when(e.used):16s}  {e.path.absolute()}{note}")
    return 0
