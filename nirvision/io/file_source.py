"""A video file through PyAV: frames with their stream timestamps, plus the audio packets to copy.

Frames are turned upright as the file's display matrix says (a phone's rotation; FFmpeg's
autorotate), so outputs need none. Packets that fail to decode (corrupted bytes) are skipped
and counted in ``decode_errors``; a file that cannot be opened, holds no video stream or no
decodable frame is an ``InputError`` naming the file and what was expected.
"""
from __future__ import annotations

import heapq
import logging
import math
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
from .tags import recording_tags

log = logging.getLogger(__name__)

# file types taken as videos where a folder or glob is looked through (a batch; beside images)
VIDEO_INPUTS = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                ".h264", ".264", ".h265", ".265", ".hevc"}

MAX_CONSECUTIVE_ERRORS = 50  # a file this broken is given up on, keeping what decoded


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
            zero = stream_zero(stream)
            return [float(p.pts * p.time_base) - zero if p.pts is not None and p.time_base else None
                    for p in container.demux(stream) if p.size]
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


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__


class FileSource(Source):
    """Decode the first video stream of ``path`` to uint8 NIR (the luma plane), upright."""

    def __init__(self, path: str | Path, audio: bool = True, max_frames: int | None = None, start: float | None = None,
                 end: float | None = None, input_bits: int | str | None = None, color_frames: str = "colorize", **_ignored):
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
        self.audio = self.container.streams.audio[0] if audio and self.container.streams.audio else None
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
            audio_stream=self.audio, sample_aspect_ratio=sar,
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
        self._lock = threading.Lock()  # held while PyAV works, so close() never pulls the file away
        self.zero = stream_zero(self.video)
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
                self.audio = self.info.audio_stream = container.streams.audio[0]
            self._pending, self._slots, self._last_decoded = [], [], None

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
        """Demux video (and audio) packets; a demux error is counted and reading goes on."""
        streams = [s for s in (self.video, self.audio) if s is not None]
        consecutive = 0
        while not self._closed:
            try:
                for packet in self.container.demux(*streams):
                    consecutive = 0
                    yield packet
                return
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                consecutive += 1
                log.warning("%s: demux error (%s), skipping", self.path, _reason(exc))
                if consecutive >= MAX_CONSECUTIVE_ERRORS:
                    log.warning("%s: giving up after %d errors in a row", self.path, consecutive)
                    return

    def _decoded(self) -> Iterator[Any]:
        """Decoded PyAV frames; undecodable packets are counted and skipped."""
        consecutive = 0
        packets = self._packet_iter = self._packets()
        while True:
            with self._lock:
                if self._closed:
                    return
                packet = next(packets, None)
                if packet is None:
                    return
                self._note_slot(packet)
                if packet.stream is self.audio:
                    if packet.dts is not None and packet.size:
                        self._pending.append(packet)
                    continue
                try:
                    frames = [(vf.pts, self._luma(vf), vf) for vf in packet.decode()]
                    # judged here, under the lock (close() may free the decoder), and no PyAV frame kept past it
                    frames = [(pts, image, self._color(vf)) for pts, image, vf in frames]
                    consecutive = 0
                except av.error.FFmpegError as exc:
                    self.decode_errors += 1
                    consecutive += 1
                    where = f"the packet at pts {packet.pts}" if packet.pts is not None else "a packet"
                    log.warning("%s: %s failed to decode (%s); skipped (%d so far)", self.path, where, _reason(exc), self.decode_errors)
                    self._note_slot(packet, lost=True)
                    if consecutive >= MAX_CONSECUTIVE_ERRORS:
                        log.warning("%s: giving up after %d undecodable packets in a row", self.path, consecutive)
                        return
                    continue
                frames = [(self._presentation_time(pts), self._upright(image), color) for pts, image, color in frames]
            yield from frames

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        step = max(1, round(1 / (self.info.fps * tb))) if self.info.fps else 1
        last_pts = None
        ranged = self.start is not None or self.end is not None
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
                    break
            audio, self._pending = self._audio_before_end(self._pending), []
            self.frames_read += 1
            yield Frame(image, index=self.frames_read - 1, pts=pts, time_base=tb, audio=audio, t_read=time.perf_counter(), color=color)
            if self.max_frames is not None and self.frames_read >= self.max_frames:
                return
        expected = self.info.frames
        if expected and 0 < self.frames_read < expected and not self._closed and self.max_frames is None and not ranged:
            log.warning("%s: ended after %d of the %d frames its header announces (truncated or damaged?)", self.path, self.frames_read, expected)
        if self.frames_read == 0 and not self._closed and ranged:
            raise InputError(f"video file {self.path}: no frames from {self.start or 0:g} s to {self.end if self.end is not None else 'the end'}"
                             f"{' s' if self.end is not None else ''}; expected a range that holds at least one frame")
        if self.frames_read == 0 and not self._closed:
            extra = f" ({self.decode_errors} packets failed to decode)" if self.decode_errors else ""
            raise InputError(f"video file {self.path}: the video stream holds no decodable frames{extra}; expected at least one frame")

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
        first = next(decoded, None)
        for back in self.SEEK_BACK_S:
            if first is not None and (first[0] is None or float(first[0] * tb) - self.zero <= self.start + EPS_S):
                break
            landed = f"{float(first[0] * tb) - self.zero:.3f} s" if first is not None else "no decodable frame"
            again = self.start - back if back is not None and self.start - back > 0 else None
            log.info("%s: the seek to %.3f s found %s; reading again from %s", self.path, self.start, landed,
                     f"{again:.3f} s" if again is not None else "the beginning")
            decoded.close()
            self._seek(again)
            decoded = self._decoded()
            first = next(decoded, None)
            if again is None:
                break
        if first is not None:
            yield first
        yield from decoded

    def _drain_audio(self) -> None:
        """At ``end``: read on a little for sound that starts before it, stored after it."""
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
                if packet.stream is self.audio and packet.size and t < self.end - EPS_S:
                    self._pending.append(packet)
                elif packet.stream is self.video and t > limit:
                    return

    def pending_audio(self) -> list[Any]:
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
