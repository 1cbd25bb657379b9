"""A video file through PyAV: frames with their stream timestamps, plus the audio packets to copy.

Frames are turned upright as the file's display matrix says (a phone's rotation; FFmpeg's
autorotate), so outputs need none. Packets that fail to decode (corrupted bytes) are skipped
and counted in ``decode_errors``; a damaged stretch (a bad sector, a cut in the middle) is read
through to the intact rest, reported once (``damage``), and a file that ends short of the length
its header announces is reported too (``shortfall``). A file that cannot be opened, holds no
video stream or no decodable frame, or declares frames of more than ``MAX_PIXELS`` (image_source),
is an ``InputError`` naming the file and what was expected. A clock that jumps back
(recordings joined end to end, a camera's clock reset) does not pile the frames after it onto
one instant: the timeline goes on (``Timeline``), which is said and counted (``discontinuities``).
"""
from __future__ import annotations

import heapq
import logging
import math
import re
import struct
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np

from ..errors import InputError
from ..runtime.frames import SampleDepth, to_nir
from .base import Frame, Source, SourceInfo
from .color_frames import GRAY_FORMATS, ColorFrames, av_thumbnail, pick_array
from .image_source import MAX_PIXELS, check_pixels
from .tags import recording_tags

log = logging.getLogger(__name__)

# file types taken as videos where a folder or glob is looked through (a batch; beside images)
VIDEO_INPUTS = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                ".h264", ".264", ".h265", ".265", ".hevc",
                ".dav", ".asf", ".mxf", ".vob", ".y4m", ".ogv", ".f4v", ".dv", ".mjpeg", ".mjpg", ".nut", ".3g2"}  # NVR exports (Dahua .dav) and others FFmpeg reads

# Damaged files are read on as long as the demuxer gets somewhere: undecodable packets cost
# little to skip, and an hour of intact recording may follow a damaged second. Given up only
# when it is stuck: this many demux errors in a row without a packet between, or undecodable
# packets in a row that do not move on in the file (neither position nor time beyond the
# furthest seen; a demuxer going round in circles) ...
MAX_STALLED = 50
# ... or, as a last bound, a damaged stretch this long (packets: 11 hours at 25 frames a second)
MAX_DAMAGED_PACKETS = 1_000_000
# undecodable packets in a row that make a damaged stretch rather than a bad packet or two:
# the decoder's reference pictures are then gone, and what it would make of the packets after
# (predicted from pictures seconds older, or from garbage) is smeared; it is drained of the
# intact frames it holds, reset, and fed again from the next key packet (a clean picture)
RESYNC_AFTER = 3
# a recording whose data ends this much short of the length its header announces (at least;
# 2 frame durations where longer: a time-lapse) is taken as truncated or damaged. The video's
# own length (a track's) ends within a frame of its last packet's end in a normal file (less
# the rounding of milliseconds, an incomplete last packet of an MPEG-TS); a container's length
# also counts sound, which a camera may stop a moment after the pictures
SHORT_BY_S = (0.25, 1.0)  # (the video's own length in the header; the container's, which may be its sound's)


# A source's clock may jump back: recordings joined end to end (``cat a.ts b.ts``, an NVR's
# export of several files), a camera whose clock was reset. A packet whose decoding time goes
# back more than this (FFmpeg's threshold for MPEG-TS discontinuities) starts a new stretch
JUMP_BACK_S = 0.1
CLOCK_33 = 1 << 33  # MPEG-TS / PS timestamps: 33 bits of a 90 kHz clock, wrapping every 26.5 h
TS_DISCONT = 0x200  # AVFMT_TS_DISCONT: formats whose timestamps may jump (MPEG-TS, MPEG-PS, ...)


class Timeline:
    """Keeps a file's timestamps going where its clock jumps back, as FFmpeg's CLI does for
    MPEG-TS: the video's first packet after the jump is placed one packet duration after the
    one before it, and every packet of that stretch is shifted alike. The audio's stretches are
    shifted by the video's offsets (the k-th jump back of the audio is the video's k-th), so
    that each stays in step with its pictures, however the streams are interleaved around the
    join; audio the video has not reached yet is ``held`` until it has. In a format of a 33-bit
    clock (MPEG-TS / PS) a jump forward of more than half its range (13.3 h) to a lower clock
    value is a jump back too: FFmpeg's wrap correction reads a restart as a jump forward of
    26.5 h less the restart. Jumps forward are kept (a motion-triggered recording's gaps are
    time that passed)."""

    def __init__(self, container, video_index: int) -> None:
        self.wraps = bool(getattr(container.format, "flags", 0) & TS_DISCONT)
        self.video = video_index
        self.offsets = [Fraction(0)]  # s added to the timestamps of the video's stretches: one more at each jump back
        # stream index -> [its stretch, its last dts as read, its usual step (ticks), its own offset (s): one that keeps it going,
        # its latest pts as read]
        self._streams: dict[int, list] = {}
        self._held: dict[int, tuple[Any, int, Fraction]] = {}  # id(packet) -> (packet, stretch, own offset): waiting for the video's offset

    def fix(self, packet) -> tuple[Fraction, Fraction, Fraction] | None:
        """Shift ``packet``'s timestamps in place (or hold it); where the video jumps back: (the
        source's own time of its latest frame and of the one it jumped to, and where that one is
        placed; s by the stream's clock). Jumps are found by decoding times, which go forward
        packet by packet; the times said are the frames' (with B-frames decoded a little earlier)."""
        tb, raw, index = packet.time_base, packet.dts, packet.stream_index
        if not tb:
            return None
        state, jump = self._streams.get(index), None
        if raw is not None and state is None:
            state = self._streams[index] = [0, raw, 0, Fraction(0), packet.pts]
        elif raw is not None:
            stretch, last, step, own, _ = state
            restarted = (self.wraps and tb == Fraction(1, 90000) and raw - last > CLOCK_33 // 2
                         and raw % CLOCK_33 < last % CLOCK_33)
            if (last - raw) * tb > JUMP_BACK_S or restarted:
                before = self._offset(index, stretch)
                placed = (last + (step or 1)) * tb + (own if before is None else before)
                state[0], state[3] = stretch + 1, placed - raw * tb
                if index == self.video:
                    self.offsets.append(placed - raw * tb)
                    self._release()
                    shown, pts = state[4] if state[4] is not None else last, packet.pts if packet.pts is not None else raw
                    clock = CLOCK_33 if restarted else None
                    jump = ((shown % clock if clock else shown) * tb, (pts % clock if clock else pts) * tb, pts * tb + self.offsets[-1])
            elif raw > last:
                state[2] = packet.duration if packet.duration and packet.duration > 0 else raw - last
            state[1] = raw
            if packet.pts is not None and (state[4] is None or packet.pts > state[4] or state[0] != stretch):
                state[4] = packet.pts
        if state is None:
            return None
        offset = self._offset(index, state[0])
        if offset is None:
            self._held[id(packet)] = (packet, state[0], state[3])
        else:
            shift(packet, offset)
        return jump

    def _offset(self, index: int, stretch: int) -> Fraction | None:
        return self.offsets[stretch] if stretch < len(self.offsets) else None

    def _release(self) -> None:
        for key, (packet, stretch, _) in list(self._held.items()):
            if stretch < len(self.offsets):
                shift(packet, self.offsets[stretch])
                del self._held[key]

    def ready(self, packets: list[Any]) -> tuple[list[Any], list[Any]]:
        """``packets`` split into those shifted onto the timeline and those still held."""
        if not self._held:
            return packets, []
        return [p for p in packets if id(p) not in self._held], [p for p in packets if id(p) in self._held]

    def settle(self) -> None:
        """At the end: audio whose jump back the video never made keeps going on its own."""
        for packet, _, own in self._held.values():
            shift(packet, own)
        self._held.clear()


def shift(packet, seconds: Fraction) -> None:
    """Add ``seconds`` to a packet's timestamps (in its time base)."""
    ticks = round(seconds / packet.time_base) if seconds else 0
    if ticks:
        packet.dts = None if packet.dts is None else packet.dts + ticks
        packet.pts = None if packet.pts is None else packet.pts + ticks


def video_packets(path: str | Path, start: float | None = None, end: float | None = None) -> int | None:
    """How many video packets (frames, for the codecs a camera writes) the first video stream of
    ``path`` holds (those from ``start`` to before ``end``, seconds of the video as players count
    them, where given), counted by reading the container without decoding; None when the file
    cannot be read to its end as a video (missing, not a video, or cut short: an MP4 killed
    before its index)."""
    times = packet_times(path)
    return None if times is None else count_in_range(times, start, end)


def packet_times(path: str | Path) -> list[float | None] | None:
    """The times (s, as players count them; None where a packet has none) of the first video
    stream's packets that hold data, read without decoding; None as for ``video_packets``."""
    try:
        with av.open(str(path), "r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            zero, timeline, times = stream_zero(stream), Timeline(container, stream.index), []
            for p in container.demux(stream):
                timeline.fix(p)  # timed as the frames are read (FileSource)
                if p.size:
                    times.append(float(p.pts * p.time_base) - zero if p.pts is not None and p.time_base else None)
            return times
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None


def count_in_range(times: list[float | None], start: float | None, end: float | None) -> int:
    """How many of ``times`` lie from ``start`` to before ``end`` (a time of None counts)."""
    if not start and end is None:
        return len(times)
    return sum(1 for t in times if t is None or not range_position(t, start, end))


EPS_S = 1e-6  # frame times equal up to rounding count as equal


def range_position(t: float, start: float | None, end: float | None) -> int:
    """-1 before ``start``, 0 from it to before ``end``, 1 at or after ``end`` (seconds)."""
    if start is not None and t < start - EPS_S:
        return -1
    if end is not None and t >= end - EPS_S:
        return 1
    return 0


def stream_zero(stream) -> float:
    """The time (s) players show as 0:00 for ``stream``: its first timestamp."""
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def announced_length(container, stream, zero: float) -> tuple[float, bool] | None:
    """How long (s, from the video's first frame) the file's header says the video ``stream``
    runs, and whether that is the whole container's length (which may be its sound's) rather
    than the video's own; None where the header says nothing (an MKV recorded live, a
    bare stream). Where a length can be read two ways the shorter is taken: a warning of lost
    footage must not come from a misreading."""
    if stream.duration and stream.time_base:  # MP4, MOV, AVI; MPEG-TS (from its last timestamps)
        length, whole = float(stream.duration * stream.time_base), False
    elif (tag := duration_tag(stream.metadata)) is not None:
        # MKV / WebM track statistics: FFmpeg writes where the track ends, mkvmerge how long it
        # runs from its first frame
        length, whole = tag - zero, False
    elif container.duration:  # a Matroska segment's length counts from 0, MPEG-PS's from its start
        length, whole = container.duration / av.time_base - zero, True
    else:
        return None
    return (length, whole) if length > 0 else None


def duration_tag(metadata) -> float | None:
    """A Matroska track's DURATION tag ("00:02:00.040000000") in seconds, or None."""
    for key, value in (metadata or {}).items():
        m = re.fullmatch(r"\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*\x00*", str(value)) if key.upper().startswith("DURATION") else None
        if m:
            return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    return None


class DamagedStretch:
    """Video packets in a row that gave no frame: undecodable ones, and those skipped after
    them while waiting for a key packet. Times are seconds as players count them."""

    def __init__(self, shown: float | None) -> None:
        self.shown = shown  # where the frames decoded before it end (s)
        self.packets = 0  # all of them (``decode_errors`` counts each)
        self.failed = 0  # of them, undecodable ones since it began or the decoder was last reset
        self.stalled = 0  # undecodable ones in a row that did not move on in the file
        self.first: float | None = None  # the earliest time among them
        self.last_end: float | None = None  # where the latest of them ends

    def add(self, t: float | None, duration: float) -> None:
        self.packets += 1
        if t is not None:
            self.first = t if self.first is None else min(self.first, t)
            self.last_end = t + duration if self.last_end is None else max(self.last_end, t + duration)

    def record(self, resumed: float | None) -> dict:
        """``{"from": s, "to": s, "packets": n}``: from the earliest lost packet, or the end of
        the last frame decoded before the first failure where earlier (a decoder's threads
        report an error a few packets late, and lose the frames they held), to where frames
        came again (``resumed``), else (the file ended damaged) where the last lost packet ends."""
        first = self.first if self.shown is None or self.first is None else min(self.first, self.shown)
        to = resumed if resumed is not None else self.last_end
        if first is not None and to is not None:
            to = max(to, first)
        return {"from": None if first is None else round(first, 3), "to": None if to is None else round(to, 3), "packets": self.packets}


PROBE_PACKETS = 200  # packets read at most for the first frame's display matrix and scan type
# AVFrame field orders that are interlaced (AV_FIELD_TT, BB, TB, BT); 0 unknown, 1 progressive
INTERLACED_FIELD_ORDERS = {2: "top field first", 3: "bottom field first", 4: "top field first", 5: "bottom field first"}


def display_orientation(frame) -> tuple[float, bool]:
    """How a decoded frame is to be shown: (degrees to turn it counterclockwise, as
    ``frame.rotation`` and ``np.rot90`` count; whether it is mirrored left to right before),
    from its display matrix (an MP4 / MOV track's, a phone's), as FFmpeg's autorotate reads it."""
    try:
        matrix = frame.side_data.get("DISPLAYMATRIX")
        values = struct.unpack("=9i", bytes(matrix)) if matrix is not None else None
    except (KeyError, TypeError, ValueError, struct.error):  # side data this PyAV cannot give
        values = None
    if values is None:
        return float(getattr(frame, "rotation", 0) or 0), False
    a, b, _, c, d = values[:5]  # x' = a x + c y, y' = b x + d y (y down)
    mirrored = a * d - b * c < 0
    if mirrored:  # the matrix is a left-right mirror, then a rotation
        a, b = -a, -b
    return -math.degrees(math.atan2(b, a)), mirrored


def probe_first_frame(path: Path, index: int) -> tuple[float, bool, bool] | None:
    """(``display_orientation()``, whether interlaced) of the first frame of stream ``index``
    that decodes, read through a container of its own (the source's stays at its first packet);
    None when none decodes."""
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams[index]
            for n, packet in enumerate(container.demux(stream)):
                try:
                    for frame in packet.decode():
                        return (*display_orientation(frame), bool(frame.interlaced_frame))
                except av.error.FFmpegError:
                    pass
                if n >= PROBE_PACKETS:
                    return None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, IndexError):
        pass
    return None


def _stream_codec(stream) -> str:
    """A stream's codec for messages (``srt``), a data stream's handler (``TimeCodeHandler``), or its type."""
    ctx = getattr(stream, "codec_context", None)
    return getattr(ctx, "name", None) or (stream.metadata or {}).get("handler_name") or stream.type


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__


class FileSource(Source):
    """Decode the first video stream of ``path`` to uint8 NIR (the luma plane), upright."""

    def __init__(self, path: str | Path, audio: bool = True, max_frames: int | None = None, start: float | None = None,
                 end: float | None = None, input_bits: int | str | None = None, color_frames: str = "colorize", max_pixels: int = MAX_PIXELS,
                 **_ignored):
        super().__init__()
        self.path = Path(path)
        self.max_frames = max_frames
        self.start, self.end = start or None, end
        if not self.path.exists():
            raise InputError(f"video file {self.path}: not found")
        if not self.path.is_file():
            raise InputError(f"video file {self.path}: not a regular file")
        try:
            self.container = av.open(str(self.path), "r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(f"video file {self.path}: cannot be read as a video ({_reason(exc)}); expected a video file such as MP4, MKV, MOV or AVI") from None
        if not self.container.streams.video:
            others = len(self.container.streams)  # counted before closing, which empties the list
            self.container.close()
            raise InputError(f"video file {self.path}: holds no video frames (no video stream with data, {others} other stream(s)); expected a video with at least one frame")
        self.video = self.container.streams.video[0]
        if len(self.container.streams.video) > 1:
            log.warning("video file %s: holds %d video streams; reading only the first (stream #%d, %dx%d %s)", self.path,
                        len(self.container.streams.video), self.video.index, self.video.codec_context.width, self.video.codec_context.height,
                        self.video.codec_context.name)
        # every audio track goes to the outputs (a second microphone, a commentary), the first is ``audio``
        self.audios = list(self.container.streams.audio) if audio else []
        self.audio = self.audios[0] if self.audios else None
        others = [s for s in self.container.streams if s.type not in ("video", "audio")]
        if others:
            log.info("video file %s: its %s stream%s (%s) %s not carried into the outputs", self.path, ", ".join(sorted({s.type for s in others})),
                     "s" if len(others) > 1 else "", ", ".join(f"#{s.index} {_stream_codec(s)}" for s in others), "are" if len(others) > 1 else "is")
        vctx = self.video.codec_context
        vctx.thread_type = "AUTO"
        fps = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        frames = self.video.frames or None
        self._exact_frames = False  # frames counted packet by packet (a range's too)
        tb = self.video.time_base
        self._avi = self.container.format.name == "avi"
        if self._avi and tb and fps >= 200 and fps == 1 / tb:
            # an AVI of variable frame rate: a slot for every tick of a fine clock (1 ms), most of
            # them empty; its header counts the slots (480 for 12 frames) and its rate the ticks
            times = packet_times(self.path)  # read once: the whole count gives the rate, the range's the total
            length = float(self.video.duration * tb) if self.video.duration else (self.container.duration or 0) / av.time_base
            if times and length > 0:
                fps = Fraction(len(times) / length).limit_denominator(1001)
                frames = count_in_range(times, start or None, end)
                self._exact_frames = True
            log.info("video file %s: an AVI of variable frame rate (a %s Hz clock): %s frames, %.3g a second on average",
                     self.path, float(1 / tb), frames if self._exact_frames else "?", float(fps))
        width, height = vctx.width or None, vctx.height or None
        try:  # a frame size past any camera's, refused before one is decoded (a small file can declare gigabytes a frame)
            check_pixels(width or 0, height or 0, f"video file {self.path}", max_pixels)
        except ValueError as exc:
            self.container.close()
            raise InputError(str(exc)) from None
        sar = self.video.sample_aspect_ratio or vctx.sample_aspect_ratio
        sar = Fraction(sar) if sar and sar > 0 and sar != 1 else None
        first = probe_first_frame(self.path, self.video.index)
        self._turns, self._mirrored = self._orientation(first, width, height)
        if self._turns % 2:  # shown a quarter turn round: the displayed size, and pixels as tall as they were wide
            width, height = height, width
            sar = 1 / sar if sar else None
        self._check_interlaced(first, vctx)
        self.info = SourceInfo(
            kind="file", description=str(self.path), live=False, fps=Fraction(fps),
            time_base=self.video.time_base or Fraction(1, 90000),
            frames=frames, width=width, height=height,
            audio_stream=self.audio, audio_streams=tuple(self.audios), sample_aspect_ratio=sar,
        )
        # AVI keeps one time per packet, in decoding order: where the codec reorders frames
        # (H.264 B-frames) the decoded frames' times are out of order, and the k-th frame shown
        # belongs at the k-th earliest of those times (a heap of the packets' times not yet used)
        self.depth = SampleDepth(input_bits, name=str(self.path))
        self.colors = ColorFrames(color_frames, name=str(self.path), fps=fps)
        self.info.color_frames = self.colors.mode
        self._reordered = self._avi and bool(vctx.has_b_frames)
        self._slots: list[int] = []
        self._pending: list[Any] = []
        self._last_decoded: int | None = None
        self._closed = False
        self._earlier: list[Any] = []  # containers read before a re-opening (``_reopen``)
        # what the file lost, for the run's summary: the damaged stretches read through
        # (``{"from": s, "to": s, "packets": n}`` each), and where it ended short of the length
        # its header announces (``{"frames", "expected", "seconds", "expected_seconds"}``)
        self.damage: list[dict] = []
        self.shortfall: dict | None = None
        self._video_end: float | None = None  # where the video demuxed or decoded so far ends (s, as players count)
        self._data_end: float | None = None  # ... and any stream read
        self._video_packets = 0  # video packets with data demuxed (a damaged one, too)
        self._held: list | None = None  # damaged stretches found while looking for ``start`` (reported once it is found)
        self._lock = threading.Lock()  # held while PyAV works, so close() never pulls the file away
        self.zero = stream_zero(self.video)
        self._timeline = Timeline(self.container, self.video.index)
        self._jumps_said: set[tuple] = set()  # the jumps back said already (a range's start may be read twice)
        self.discontinuities = 0  # where the source's clock jumped back (the timeline kept going)
        self.info.tags, self.info.created = recording_tags(self.container.metadata)
        self.info.created_at = self.zero
        if self.start is not None or self.end is not None:
            self._limit_frames_to_range(fps)
        if max_frames is not None and self.info.frames:
            self.info.frames = min(self.info.frames, max_frames)

    def _orientation(self, first, width: int | None, height: int | None) -> tuple[int, bool]:
        """(quarter turns counterclockwise, mirrored) that show the frames upright, as the
        file's display matrix says (FFmpeg's autorotate); outputs then need no rotation."""
        if first is None:
            return 0, False
        degrees, mirrored, _ = first
        turns = round(degrees / 90)
        if abs(degrees - 90 * turns) > 1:
            log.warning("video file %s: its display matrix turns frames by %.1f degrees; only quarter turns are applied, frames are read as stored",
                        self.path, -degrees % 360)
            return 0, False
        turns %= 4
        if turns or mirrored:
            how = ["mirrored" if mirrored else "",
                   ("", "rotated by 90 degrees counterclockwise", "rotated by 180 degrees", "rotated by 90 degrees clockwise")[turns]]
            shown = (height, width) if turns % 2 else (width, height)
            log.info("video file %s: frames are %s, as the file's display matrix says (read upright: %sx%s)", self.path,
                     " and ".join(x for x in how if x), *(x or "?" for x in shown))
        return turns, mirrored

    def _check_interlaced(self, first, vctx) -> None:
        order = INTERLACED_FIELD_ORDERS.get(int(getattr(vctx, "field_order", 0) or 0))
        if order is None and first is not None and first[2]:
            order = "interlaced"
        if order:
            log.warning("video file %s: the video is interlaced (%s) and is not deinterlaced; moving edges may show combing",
                        self.path, order)

    def _luma(self, vf) -> np.ndarray:
        """A decoded frame's luma as uint8: 16-bit formats (gray16, which Mono10 / Mono12 cameras'
        recordings fill with 10 or 12 bits) through the stream's ``SampleDepth``; every other
        format by FFmpeg, which knows its depth."""
        if any(c.bits == 16 for c in vf.format.components):
            return to_nir(vf.to_ndarray(format="gray16le"), name=str(self.path), depth=self.depth)
        return vf.to_ndarray(format="gray")

    def _color(self, vf) -> np.ndarray | None:
        """The decoded frame as uint8 RGB, upright, where it passes through (``--color-frames
        pass``), else None. Frames before ``start`` are decoded but not judged."""
        if self.start and vf.pts is not None and vf.time_base and range_position(float(vf.pts * vf.time_base) - self.zero, self.start, None) < 0:
            return None
        if vf.format.name.startswith(GRAY_FORMATS) or not any(c.bits == 16 for c in vf.format.components):
            return self.colors.pick(lambda: av_thumbnail(vf), lambda: self._upright(vf.to_ndarray(format="rgb24")))
        # 16-bit colour: by its own depth, as 16-bit pictures are (--input-bits)
        return pick_array(self.colors, lambda: vf.to_ndarray(format="bgr48le"), self.depth.fixed, self.depth.bits, self._upright)

    def _upright(self, image: np.ndarray) -> np.ndarray:
        if self._mirrored:
            image = image[:, ::-1]
        if self._turns:
            image = np.rot90(image, self._turns)
        return np.ascontiguousarray(image) if self._turns or self._mirrored else image

    def _note_slot(self, packet, lost: bool = False) -> None:
        """AVI: keep a video packet's time for the frame it decodes to; ``lost``: drop it again
        (the packet did not decode: its frame is missing)."""
        slot = packet.dts if packet.dts is not None else packet.pts
        if not self._avi or packet.stream is not self.video or not packet.size or slot is None:
            return
        if not lost:
            heapq.heappush(self._slots, slot)
        elif slot in self._slots:
            self._slots.remove(slot)
            heapq.heapify(self._slots)

    def _presentation_time(self, pts: int | None) -> int | None:
        """A decoded frame's time; AVI: the earliest packet time not yet used (see __init__)."""
        if not self._avi:
            return pts
        slot = heapq.heappop(self._slots) if self._slots else None
        if not self._reordered and pts is not None and self._last_decoded is not None and pts < self._last_decoded:
            self._reordered = True
            log.info("%s: decoded frame times go back (frames reordered in AVI); timing frames by their packets' order", self.path)
        self._last_decoded = pts if pts is not None else self._last_decoded
        return slot if self._reordered and slot is not None else pts

    def _limit_frames_to_range(self, fps) -> None:
        """``start`` / ``end``: check them against the video's length and seek to ``start``."""
        length = None
        if self.video.duration is not None and self.video.time_base:
            length = float(self.video.duration * self.video.time_base)
        elif self.container.duration:
            length = self.container.duration / av.time_base
        if self.start is not None and length is not None and self.start >= length:
            self.close()
            raise InputError(f"video file {self.path}: --start {self.start:g} s is past its end ({length:.3f} s); expected a time within the video")
        first = self.start or 0.0
        last = min(x for x in (self.end, length) if x is not None) if (self.end is not None or length is not None) else None
        if last is not None and not self._exact_frames:  # the progress bar's total: frame times from first to before last
            estimate = max(1, math.ceil((last - first) * float(fps) - 1e-3))
            self.info.frames = min(self.info.frames, estimate) if self.info.frames else estimate
        if self.start:
            self._seek(self.start)

    def _seek(self, t: float | None) -> None:
        """To the key frame at or before ``t`` seconds (None: the beginning); the frames between
        it and ``start`` are decoded and left out."""
        if t is None:  # opened again: reading from the first packet is the one sure way back
            self._reopen()
            return
        target = int(round((self.zero + t) / self.video.time_base))
        with self._lock:  # close() from another thread waits
            if self._closed:
                return
            try:
                self.container.seek(target, stream=self.video, backward=True, any_frame=False)
                self.video.codec_context.flush_buffers()
            except (av.error.FFmpegError, OSError) as exc:
                log.warning("%s: cannot seek to %.3f s (%s); reading on from here", self.path, t or 0.0, _reason(exc))
            self._pending, self._slots, self._last_decoded = [], [], None
            # jumps back before the seek's target are not known: times from here are the source's own
            self._timeline = Timeline(self.container, self.video.index)

    def _reopen(self) -> None:
        """Open the file again, reading from its first packet. The first container stays open
        until ``close()``: outputs made its audio stream their template and may still read it."""
        with self._lock:
            if self._closed:
                return
            try:
                container = av.open(str(self.path), "r")
            except (av.error.FFmpegError, OSError) as exc:
                log.warning("%s: cannot open it again to read from the beginning (%s)", self.path, _reason(exc))
                return
            self._earlier.append(self.container)
            self.container = container
            self.video = container.streams.video[0]
            self.video.codec_context.thread_type = "AUTO"
            if self.audio is not None:
                self.audios = [container.streams[s.index] for s in self.audios]
                self.audio = self.info.audio_stream = self.audios[0]
                self.info.audio_streams = tuple(self.audios)
            self._pending, self._slots, self._last_decoded = [], [], None
            self._timeline = Timeline(container, self.video.index)

    def _in_range(self, pts: int | None, time_base) -> int:
        """-1 before ``start``, 0 within the range, 1 at or after ``end``."""
        if pts is None or not time_base:
            return 0
        return range_position(float(pts * time_base) - self.zero, self.start, self.end)

    def _audio_before_end(self, packets: list[Any]) -> list[Any]:
        if self.end is None:
            return packets
        return [p for p in packets if self._in_range(p.pts, p.time_base) < 1]

    def _packets(self) -> Iterator[Any]:
        """Demux video (and audio) packets; a demux error is counted and reading goes on, until
        the demuxer is stuck (``MAX_STALLED`` errors in a row without a packet between)."""
        streams = [self.video, *self.audios]
        consecutive = 0
        while not self._closed:
            try:
                for packet in self.container.demux(*streams):
                    consecutive = 0
                    self._keep_time(packet)
                    yield packet
                return
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                consecutive += 1
                (log.warning if consecutive == 1 else log.debug)("%s: demux error (%s), skipping", self.path, _reason(exc))
                if consecutive >= MAX_STALLED:
                    log.warning("%s: giving up after %d demux errors in a row without a packet between; the rest of the file cannot be read",
                                self.path, consecutive)
                    return

    def _keep_time(self, packet) -> None:
        """Shift a packet onto the timeline that goes on past a jump back (``Timeline``); say each jump once."""
        jump = self._timeline.fix(packet)
        if jump is None:
            return
        said = (jump[0], jump[1])
        if said in self._jumps_said:
            return
        self._jumps_said.add(said)
        self.discontinuities += 1
        before, after, placed = (float(x) - self.zero for x in jump)
        log.warning("%s: the timestamps jump back from %.3f s to %.3f s (recordings joined, or a camera's clock reset); "
                    "what follows is placed right after what came before, from %.3f s on", self.path, before, after, placed)

    def _packet_time(self, packet) -> tuple[float | None, float]:
        """(a packet's time, s as players count them, or None; its duration, s, a frame's where it has none)."""
        step = 1 / float(self.info.fps) if self.info.fps else 0.04
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or not packet.time_base:
            return None, step
        duration = float(packet.duration * packet.time_base) if packet.duration and packet.duration > 0 else step
        return float(ts * packet.time_base) - self.zero, duration

    def _reached(self, packet, t: float | None, duration: float) -> None:
        """Keep where the data demuxed so far ends, and how many video packets (``_check_length``)."""
        if packet.stream is self.video and packet.size:
            self._video_packets += 1
        if t is None:
            return
        if self._data_end is None or t + duration > self._data_end:
            self._data_end = t + duration
        if packet.stream is self.video and (self._video_end is None or t + duration > self._video_end):
            self._video_end = t + duration

    def _decoded(self) -> Iterator[Any]:
        """Decoded PyAV frames. Undecodable packets are counted and skipped; a run of them (a
        damaged stretch) is read through: the decoder is drained and reset and fed again from
        the next key packet, and the stretch is reported once, when frames come again (``damage``).
        Only a demuxer that gets nowhere any more ends the reading (``MAX_STALLED``)."""
        packets = self._packet_iter = self._packets()
        stretch: DamagedStretch | None = None
        waiting = 0  # after a resync: non-key packets still to skip at most (0: none)
        furthest = (-1, -math.inf)  # the furthest file position and time reached
        since_key, key_gap = None, 0  # packets since the last key packet; the longest gap seen between two
        shown = None  # where the latest frame decoded so far ends (s)
        while True:
            with self._lock:
                if self._closed:
                    return
                packet = next(packets, None)
                if packet is None:
                    if stretch is not None:  # damaged to the end
                        self._report(stretch, None, to_the_end=True)
                    return
                self._note_slot(packet)
                t, duration = self._packet_time(packet)
                self._reached(packet, t, duration)
                if packet.stream.type == "audio":
                    if packet.dts is not None and packet.size:
                        self._pending.append(packet)
                    continue
                moved = False
                if packet.size:
                    pos = packet.pos if packet.pos is not None and packet.pos >= 0 else None
                    moved = pos > furthest[0] if pos is not None else t is not None and t > furthest[1]
                    furthest = (max(furthest[0], pos if pos is not None else -1), max(furthest[1], t if t is not None else -math.inf))
                    if packet.is_keyframe:
                        key_gap = max(key_gap, since_key or 0)
                        since_key = 0
                        waiting = 0
                    elif since_key is not None:
                        since_key += 1
                if waiting and packet.size:  # no picture to predict from: skipped up to the next key packet
                    waiting -= 1
                    self.decode_errors += 1
                    stretch.add(t, duration)
                    self._note_slot(packet, lost=True)
                    log.debug("%s: the packet at pts %s skipped, waiting for a key packet", self.path, packet.pts)
                    if stretch.packets >= MAX_DAMAGED_PACKETS:
                        return self._give_up(stretch)
                    continue
                resumed = True
                try:
                    frames = [(vf.pts, self._luma(vf), vf) for vf in packet.decode()]
                    # judged here, under the lock (close() may free the decoder), and no PyAV frame kept past it
                    frames = [(pts, image, self._color(vf)) for pts, image, vf in frames]
                except av.error.FFmpegError as exc:
                    self.decode_errors += 1
                    stretch = stretch or DamagedStretch(shown)
                    stretch.add(t, duration)
                    stretch.failed += 1
                    stretch.stalled = 0 if moved else stretch.stalled + 1
                    where = f"the packet at pts {packet.pts}" if packet.pts is not None else "a packet"
                    log.debug("%s: %s failed to decode (%s); skipped (%d so far)", self.path, where, _reason(exc), self.decode_errors)
                    self._note_slot(packet, lost=True)
                    if stretch.stalled >= MAX_STALLED or stretch.packets >= MAX_DAMAGED_PACKETS:
                        return self._give_up(stretch)
                    if stretch.failed < RESYNC_AFTER:
                        continue
                    # a damaged stretch: the frames the decoder holds (from before it) come out, then
                    # it starts afresh; where key packets are known, from the next one
                    frames, resumed = self._resync(), False
                    stretch.failed = 0
                    waiting = 2 * key_gap if key_gap > 1 else 0
                frames = [(self._presentation_time(pts), self._upright(image), color) for pts, image, color in frames]
                times = [float(pts * self.video.time_base) - self.zero for pts, _, _ in frames if pts is not None and self.video.time_base]
                if frames and resumed and stretch is not None:
                    # frames again, unless all are from before the damage (reordered, or a decoder thread's delay)
                    later = [x for x in times if stretch.first is None or x > stretch.first - EPS_S]
                    if later or not times:
                        self._report(stretch, min(later) if later else None)
                        stretch, waiting = None, 0
                if times and (shown is None or max(times) + duration > shown):
                    shown = max(times) + duration
            yield from frames

    def _resync(self) -> list[tuple[Any, np.ndarray, np.ndarray | None]]:
        """Drain the decoder (the frames it still holds decoded from before the damage) and
        reset it; (pts, luma, colour) of the drained frames, as ``_decoded`` makes them."""
        ctx = self.video.codec_context
        frames = []
        try:
            decoded = ctx.decode(None)
            for vf in decoded:
                vf.time_base = self.video.time_base  # not set on frames from the codec itself
            frames = [(vf.pts, self._luma(vf), vf) for vf in decoded]
            frames = [(pts, image, self._color(vf)) for pts, image, vf in frames]
        except av.error.FFmpegError as exc:  # frame threads lose what they held on an error
            log.debug("%s: draining the decoder failed (%s)", self.path, _reason(exc))
        ctx.flush_buffers()
        return frames

    def _give_up(self, stretch: DamagedStretch) -> None:
        self._report(stretch, None, to_the_end=True)
        why = (f"the last {stretch.stalled} not moving on in the file: the demuxer is stuck" if stretch.stalled >= MAX_STALLED
               else "more than any recording holds")
        log.warning("%s: giving up after %d undecodable packets in a row (%s); the rest of the file is not read", self.path, stretch.packets, why)

    def _report(self, stretch: DamagedStretch, resumed: float | None, to_the_end: bool = False) -> None:
        """Log a damaged stretch once and keep it in ``damage`` (not one wholly before ``start``:
        between the key frame sought and the range, nothing of it was asked for)."""
        record = stretch.record(resumed)
        if self.start and record["to"] is not None and record["to"] <= self.start + EPS_S:
            log.debug("%s: %d undecodable packets before --start %g s", self.path, stretch.packets, self.start)
            return
        packets = f"{stretch.packets} packet{'s' if stretch.packets != 1 else ''}"
        if record["from"] is None:
            message = f"{self.path}: frames could not be decoded ({packets}); skipped"
        elif to_the_end or record["to"] is None:
            to = f" (at {record['to']:.2f} s)" if record["to"] is not None else ""
            message = f"{self.path}: frames could not be decoded from {record['from']:.2f} s to the end{to} ({packets}); skipped"
        else:
            message = f"{self.path}: frames could not be decoded from {record['from']:.2f} s to {record['to']:.2f} s ({packets}); skipped"
        if self._held is not None:  # reading may begin again from an earlier key frame (``_from_start``)
            self._held.append((record, message))
        else:
            self.damage.append(record)
            log.warning("%s", message)

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        step = max(1, round(1 / (self.info.fps * tb))) if self.info.fps else 1
        last_pts = None
        ranged = self.start is not None or self.end is not None
        at_end = False  # the range's end was reached (not the file's)
        frame_s = 1 / float(self.info.fps) if self.info.fps else 0.04
        for pts, image, color in self._from_start():
            if pts is None:
                pts = 0 if last_pts is None else last_pts + step
            last_pts = pts
            if ranged:
                where = self._in_range(pts, tb)
                if where < 0:
                    continue  # between the key frame sought and start
                if where > 0:
                    self._drain_audio()
                    at_end = True
                    break
            audio, self._pending = self._timeline.ready(self._pending)  # audio past a jump the video has not reached waits
            audio = self._audio_before_end(audio)
            self.frames_read += 1
            if tb and (end := float(pts * tb) - self.zero + frame_s) > (self._video_end or -math.inf):
                self._video_end = end
            yield Frame(image, index=self.frames_read - 1, pts=pts, time_base=tb, audio=audio, t_read=time.perf_counter(), color=color)
            if self.max_frames is not None and self.frames_read >= self.max_frames:
                return
        if self.frames_read and not self._closed and not at_end:
            self._check_length(ranged)
        if self.frames_read == 0 and not self._closed and ranged:
            raise InputError(f"video file {self.path}: no frames from {self.start or 0:g} s to {self.end if self.end is not None else 'the end'}"
                             f"{' s' if self.end is not None else ''}; expected a range that holds at least one frame")
        if self.frames_read == 0 and not self._closed:
            extra = f" ({self.decode_errors} packets failed to decode)" if self.decode_errors else ""
            raise InputError(f"video file {self.path}: the video stream holds no decodable frames{extra}; expected at least one frame")

    def _check_length(self, ranged: bool) -> None:
        """At the end of the file: warn, and keep it in ``shortfall``, where its data ended short
        of what its header announces: well short of its length (``SHORT_BY_S``; of ``end``
        where that comes first), or with fewer video packets than the frames it counts (MP4,
        AVI): the file was cut (a recording killed, a copy broken off), or the demuxer stopped
        at damage or skipped some. Packets the demuxer delivered that did not decode are
        damaged stretches (``damage``), not counted again here. An MPEG-TS states no length:
        FFmpeg estimates one from its last timestamps, so only damage that stops its demuxer
        early shows."""
        expected = self.info.frames if self.info.frames and not ranged and self.max_frames is None else None
        announced = announced_length(self.container, self.video, self.zero)
        if announced is not None and announced[1] and len(self.container.streams) > 1 + len(self.audios):
            announced = None  # the container's length, which may be that of streams not read
        if self.discontinuities:
            announced = None  # measured from the first to the last timestamp, across the jumps back
        reached, target, short = self._video_end, None, False
        if announced is not None:
            length, whole = announced
            if whole:  # the container's length: its sound's, maybe, which may run on past the pictures
                reached = self._data_end
            target = min(length, self.end) if self.end is not None else length
            short = reached is not None and target - reached > max(SHORT_BY_S[whole], 2 / float(self.info.fps or 25))
        if not short and not (expected and self._video_packets < expected):
            return
        self.shortfall = {"frames": self.frames_read, "expected": expected, "seconds": None if reached is None else round(reached, 3),
                          "expected_seconds": round(target, 3) if short else None}
        frames = f"{self.frames_read} of the {expected} frames its header announces" if expected else f"{self.frames_read} frames"
        if not short:
            log.warning("%s: ended after %s (truncated or damaged?)", self.path, frames)
        elif self.end is not None and self.end < length:
            log.warning("%s: ended after %s, at %.2f s, short of --end %g s (its header announces %.2f s; truncated or damaged?)",
                        self.path, frames, reached, self.end, length)
        elif expected:
            log.warning("%s: ended after %s, at %.2f s of %.2f s (truncated or damaged?)", self.path, frames, reached, target)
        else:
            log.warning("%s: ended after %s, at %.2f s of the %.2f s its header announces (truncated or damaged?)",
                        self.path, frames, reached, target)

    # seconds the file is read on past ``end`` for sound that belongs before it but is stored
    # later (cameras interleave sound and pictures in chunks of about a second)
    AUDIO_AFTER_END_S = 2.0
    # how much earlier to seek again when a seek landed after ``start`` (MPEG-TS seeks to a
    # position, not a key frame: its decoder waits for the next one); None: the beginning
    SEEK_BACK_S = (5.0, 30.0, 120.0, None)

    def _from_start(self) -> Iterator[Any]:
        """``_decoded()``, after making sure that reading begins at or before ``start``."""
        decoded = self._decoded()
        if not self.start:
            yield from decoded
            return
        tb = self.info.time_base
        # what goes wrong while looking for start is said once the reading that finds it is kept:
        # one that sought too late is read again from earlier, and would count and say it twice
        errors, self._held = self.decode_errors, []
        first = next(decoded, None)
        for back in self.SEEK_BACK_S:
            if first is not None and (first[0] is None or float(first[0] * tb) - self.zero <= self.start + EPS_S):
                break
            landed = f"{float(first[0] * tb) - self.zero:.3f} s" if first is not None else "no decodable frame"
            again = self.start - back if back is not None and self.start - back > 0 else None
            log.info("%s: the seek to %.3f s found %s; reading again from %s", self.path, self.start, landed,
                     f"{again:.3f} s" if again is not None else "the beginning")
            decoded.close()
            self.decode_errors, self._held = errors, []
            self._seek(again)
            decoded = self._decoded()
            first = next(decoded, None)
            if again is None:
                break
        held, self._held = self._held, None
        for record, message in held:
            self.damage.append(record)
            log.warning("%s", message)
        if first is not None:
            yield first
        yield from decoded

    def _drain_audio(self) -> None:
        """At ``end``: read on a little for sound that starts before it, stored after it."""
        self._timeline.settle()
        self._pending = self._audio_before_end(self._pending)
        if self.audio is None or self.end is None:
            return
        limit = self.end + self.AUDIO_AFTER_END_S
        with self._lock:
            if self._closed:
                return
            for packet in getattr(self, "_packet_iter", ()):
                if packet.pts is None or not packet.time_base:
                    continue
                t = float(packet.pts * packet.time_base) - self.zero
                if packet.stream.type == "audio" and packet.size and t < self.end - EPS_S:
                    self._pending.append(packet)
                elif packet.stream is self.video and t > limit:
                    return

    def pending_audio(self) -> list[Any]:
        self._timeline.settle()
        audio, self._pending = self._audio_before_end(self._pending), []
        return audio

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for container in [self.container, *self._earlier]:
                try:
                    container.close()
                except av.error.FFmpegError:  # pragma: no cover - closing a broken file
                    pass
