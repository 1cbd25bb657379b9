"""A video file through PyAV: frames with their stream timestamps, plus the audio packets to copy.

Packets that fail to decode (corrupted bytes) are skipped and counted in ``decode_errors``;
a file that cannot be opened, holds no video stream or no decodable frame is an
``InputError`` naming the file and what was expected.
"""
from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av

from ..errors import InputError
from .base import Frame, Source, SourceInfo

log = logging.getLogger(__name__)

# file types taken as videos where a folder or glob is looked through (a batch; beside images)
VIDEO_INPUTS = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}

MAX_CONSECUTIVE_ERRORS = 50  # a file this broken is given up on, keeping what decoded


def video_packets(path: str | Path) -> int | None:
    """How many video packets (frames, for the codecs a camera writes) the first video stream of
    ``path`` holds, counted by reading the container without decoding; None when the file cannot
    be read to its end as a video (missing, not a video, or cut short: an MP4 killed before its
    index)."""
    try:
        with av.open(str(path), "r") as container:
            if not container.streams.video:
                return None
            return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__


class FileSource(Source):
    """Decode the first video stream of ``path`` to uint8 NIR (the luma plane)."""

    def __init__(self, path: str | Path, audio: bool = True, max_frames: int | None = None, **_ignored):
        super().__init__()
        self.path = Path(path)
        self.max_frames = max_frames
        if not self.path.exists():
            raise InputError(f"video file {self.path}: not found")
        if not self.path.is_file():
            raise InputError(f"video file {self.path}: not a regular file")
        try:
            self.container = av.open(str(self.path), "r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(f"video file {self.path}: cannot be read as a video ({_reason(exc)}); expected a video file such as MP4, MKV, MOV or AVI") from None
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"video file {self.path}: holds no video frames (no video stream with data, {len(self.container.streams)} other stream(s)); expected a video with at least one frame")
        self.video = self.container.streams.video[0]
        self.audio = self.container.streams.audio[0] if audio and self.container.streams.audio else None
        vctx = self.video.codec_context
        vctx.thread_type = "AUTO"
        fps = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        self.info = SourceInfo(
            kind="file", description=str(self.path), live=False, fps=Fraction(fps),
            time_base=self.video.time_base or Fraction(1, 90000),
            frames=(self.video.frames or None), width=vctx.width or None, height=vctx.height or None,
            audio_stream=self.audio,
        )
        if max_frames is not None and self.info.frames:
            self.info.frames = min(self.info.frames, max_frames)
        self._pending: list[Any] = []
        self._closed = False
        self._lock = threading.Lock()  # held while PyAV works, so close() never pulls the file away

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
        packets = self._packets()
        while True:
            with self._lock:
                if self._closed:
                    return
                packet = next(packets, None)
                if packet is None:
                    return
                if packet.stream is self.audio:
                    if packet.dts is not None and packet.size:
                        self._pending.append(packet)
                    continue
                try:
                    frames = [(vf.pts, vf.to_ndarray(format="gray")) for vf in packet.decode()]
                    consecutive = 0
                except av.error.FFmpegError as exc:
                    self.decode_errors += 1
                    consecutive += 1
                    where = f"the packet at pts {packet.pts}" if packet.pts is not None else "a packet"
                    log.warning("%s: %s failed to decode (%s); skipped (%d so far)", self.path, where, _reason(exc), self.decode_errors)
                    if consecutive >= MAX_CONSECUTIVE_ERRORS:
                        log.warning("%s: giving up after %d undecodable packets in a row", self.path, consecutive)
                        return
                    continue
            yield from frames

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        step = max(1, round(1 / (self.info.fps * tb))) if self.info.fps else 1
        last_pts = None
        for pts, image in self._decoded():
            if pts is None:
                pts = 0 if last_pts is None else last_pts + step
            last_pts = pts
            audio, self._pending = self._pending, []
            self.frames_read += 1
            yield Frame(image, index=self.frames_read - 1, pts=pts, time_base=tb, audio=audio, t_read=time.perf_counter())
            if self.max_frames is not None and self.frames_read >= self.max_frames:
                return
        expected = self.info.frames
        if expected and 0 < self.frames_read < expected and not self._closed and self.max_frames is None:
            log.warning("%s: ended after %d of the %d frames its header announces (truncated or damaged?)", self.path, self.frames_read, expected)
        if self.frames_read == 0 and not self._closed:
            extra = f" ({self.decode_errors} packets failed to decode)" if self.decode_errors else ""
            raise InputError(f"video file {self.path}: the video stream holds no decodable frames{extra}; expected at least one frame")

    def pending_audio(self) -> list[Any]:
        audio, self._pending = self._pending, []
        return audio

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.container.close()
            except av.error.FFmpegError:  # pragma: no cover - closing a broken file
                pass
