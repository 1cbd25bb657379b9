"""``nirvision info``: versions, devices, which backends are usable here (and why not), and the
artefact cache (its folder, whether this user can write in it, what it holds)."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="versions, devices and usable backends")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..runtime.availability import report  # imports torch: not for every command's --help

    from ..runtime.cache import describe_cache, human_bytes

    rep = report()
    rep["cache"] = describe_cache()
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    print("nirvision", rep["versions"]["nirvision"])
    print("\nversions:")
    for k, v in rep["versions"].items():
        print(f"  {k:16s} {v or 'not installed'}")
    print("\ndevices:")
    for d in rep["devices"]:
        print(f"  {d}")
    print("\nbackends:")
    for name, st in rep["backends"].items():
        mark = "yes" if st["usable"] else "no "
        print(f"  {name:16s} {mark}  {st['detail']}")
    d = rep["defaults"]
    if d["backend"]:
        print(f"\ndefaults here: --backend auto -> {d['backend']}, --device auto -> {d['device']}, --precision auto -> {d['precision']}, "
              f"--workers auto -> {d['workers']}")
    else:
        print(f"\ndefaults here: no backend runs {d['precision']} on {d['device']}: {d['why']}")
    print(f"\nbundled weights: {rep['bundled_weights']}")
    band = rep.get("bundled_levels")
    if band:
        print(f"  NIR levels of their {band['images']} training images: 1st percentile {band['low'][0]:.0f}-{band['low'][1]:.0f}, "
              f"99th {band['high'][0]:.0f}-{band['high'][1]:.0f} (--levels auto brings frames outside these into them)")
    c = rep["cache"]
    held = f"{c['entries']} entries, {human_bytes(c['bytes'])}" + (f" ({', '.join(f'{k} {n}' for k, n in sorted(c['kinds'].items()))})" if c["kinds"] else "")
    named = "" if c["named_by"] == "default" else f", from {c['named_by']}"
    if c["writable"]:
        print(f"\nartefact cache: {c['folder']}{named} (writable): {held}; `nirvision cache` lists and clears them")
    elif c["runs_use"] != c["folder"]:
        print(f"\nartefact cache: {c['folder']} cannot be written by this user; runs use {c['runs_use']} instead, which the system may "
              f"clean (set $NIRVISION_CACHE to a folder of this user's to keep compiled models): {held}")
    else:
        print(f"\nartefact cache: {c['folder']}{named} (NOT writable by this user: it serves what it holds, nothing new can be built "
              f"in it): {held}")
    return 0
