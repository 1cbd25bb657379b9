"""What a video output says about itself: the source's tags, when it was recorded, and that its
colours are predicted.

A recorded video's container tags that describe the recording (title, location, make and model
of the camera, copyright, ...) are copied to its outputs; those that describe the file (brands,
encoder, duration) are not. Its creation time is kept, shifted by where the output begins: an
output of ``--start 2:14:30`` says it was recorded 2 h 14 min 30 s after the source did, each
piece of ``--segment`` when its own first frame was, so the wall-clock time of an event can be
read from any colorized file. A live source's outputs get the time their first frame was read.
Every output's ``comment`` says that it was colorized from NIR by nirvision and that its colours
are predicted (before the source's own comment, where it has one): a colorized night video must
not pass for a colour recording (with ``--color-frames pass``: that frames recorded in colour
are kept as recorded). Tags that would be wrong in an output of another start are left
out (a timecode, a second creation date), and values are cut at ``MAX_VALUE`` characters (MOV
holds at most 64 KiB a tag). MP4 and MOV hold only the tags they know (MP4 no camera make or
model); ``unkept`` finds what an output lost, and the video sink says so once (MKV keeps all).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

log = logging.getLogger(__name__)

# tags of the file rather than of the recording (the writer sets its own), and tags that hold the
# time of the source's start, which an output of another start would state wrongly
FILE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "creation_time", "handler_name", "vendor_id",
             "timecode"}
MAX_VALUE = 4096


def provenance(color_frames: str = "colorize") -> str:
    from .. import __version__

    if color_frames == "pass":
        return (f"colorized from near-infrared by nirvision {__version__} where recorded in near-infrared: those frames' colours are "
                "predicted, not recorded; frames recorded in colour are kept as recorded")
    return f"colorized from near-infrared by nirvision {__version__}: the colours are predicted, not recorded"


def parse_creation_time(text: str | None) -> datetime | None:
    """A container's ``creation_time`` tag (ISO 8601, as FFmpeg writes it) as an aware UTC datetime;
    None when absent or unreadable (a tag is not worth failing a run over)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00").replace(" ", "T", 1))
        if when.tzinfo is None:  # FFmpeg's muxers write UTC
            when = when.replace(tzinfo=timezone.utc)
        when = when.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        log.debug("creation_time %r: not a date; not kept", text)
        return None
    if when.year < 1971:  # QuickTime's zero (1904) or the Unix epoch: a camera without a clock
        return None
    return when


def recording_tags(metadata: Mapping[str, str]) -> tuple[dict[str, str], datetime | None]:
    """A source container's tags to copy, and its creation time."""
    keep = {k: str(v)[:MAX_VALUE] for k, v in metadata.items()
            if k.lower() not in FILE_TAGS and not k.lower().replace("_", "").endswith("creationdate")}
    created = next((v for k, v in metadata.items() if k.lower() == "creation_time"), None)
    return keep, parse_creation_time(created)


def format_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def output_tags(info: Any, first_time: float | None, t_read: float = 0.0, now: float | None = None) -> dict[str, str]:
    """The tags of an output whose first frame is at source time ``first_time`` (s), read from a
    live source at ``t_read`` (``time.perf_counter()``)."""
    tags = dict(getattr(info, "tags", None) or {})
    comment_key = next((k for k in tags if k.lower() == "comment"), "comment")
    note = provenance(getattr(info, "color_frames", "colorize"))
    tags[comment_key] = f"{note}; {tags[comment_key]}" if tags.get(comment_key) else note
    created = None
    if getattr(info, "live", False):
        wall = time.time() if now is None else now
        if t_read:
            wall -= max(0.0, time.perf_counter() - t_read)
        created = datetime.fromtimestamp(wall, timezone.utc)
    elif getattr(info, "created", None) is not None:
        offset = 0.0 if first_time is None else max(0.0, first_time - info.created_at)
        try:
            created = info.created + timedelta(seconds=offset)
        except OverflowError:  # past the year 9999: a clock set wrong, not worth failing over
            created = None
    if created is not None:
        tags["creation_time"] = format_time(created)
    return tags


def unkept(wanted: Mapping[str, str], written: Mapping[str, str]) -> list[str]:
    """The keys of ``wanted`` (the tags set, the comment aside) whose values ``written`` (the
    finished file's tags, as read back) does not hold."""
    values = set(written.values())
    have = {k.lower() for k in written}
    return sorted(k for k, v in wanted.items()
                  if k.lower() not in ("comment", "creation_time") and v not in values and k.lower() not in have)
