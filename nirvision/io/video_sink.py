"""A video file through PyAV: H.264 (libx264), yuv420p, the source's timestamps and audio.

Every frame keeps its source timestamp (variable frame rates stay variable); the source's
audio packets are copied unchanged. The video stream is created at the first frame, sized to
it (rounded up to even, as yuv420p needs); a later frame of another size is scaled to that
size, since one H.264 stream has one size. ``close()`` flushes the encoder and writes the
container's index, so the file plays after an end, an error or a signal.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..errors import InputError
from .base import Frame, Sink, SourceInfo

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v"}


def prepare_output_path(path: Path, what: str) -> None:
    """Create the parent folder; an InputError naming ``path`` when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot create its folder ({exc.strerror or exc}); expected a writable path") from None
    if path.is_dir():
        raise InputError(f"{what} {path}: is a folder; expected a file name ending in {', '.join(sorted(VIDEO_SUFFIXES))}")


class VideoSink(Sink):
    """Write RGB frames as H.264 to ``path`` (.mp4, .mkv, .mov)."""

    def __init__(self, path: str | Path, info: SourceInfo, side_by_side: bool = False, crf: int = 20, preset: str = "veryfast", audio: bool = True,
                 threads: int | None = None):
        self.path = Path(path)
        self.description = str(self.path)
        self.side_by_side = side_by_side
        self.live = info.live
        self.fps = info.fps or Fraction(25)
        self.time_base = info.time_base or 1 / self.fps
        self.options = {"crf": str(int(crf)), "preset": preset}
        if info.live:
            self.options["tune"] = "zerolatency"
        if threads:  # x264's own threads; one when inference already keeps the CPU busy
            self.options["threads"] = str(int(threads))
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"output {self.path}: unknown video type; expected a file ending in {', '.join(sorted(VIDEO_SUFFIXES))}")
        prepare_output_path(self.path, "output")
        try:
            self.container = av.open(str(self.path), "w")
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError(f"output {self.path}: cannot be written ({getattr(exc, 'strerror', None) or exc}); expected a writable path") from None
        self.audio_out = None
        if audio and info.audio_stream is not None:
            try:
                self.audio_out = self.container.add_stream_from_template(info.audio_stream)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("output %s: cannot copy the source's audio (%s); writing video only", self.path, exc)
        self.stream = None
        self.size: tuple[int, int] | None = None  # (h, w) of the encoded stream
        self._audio_backlog: list[Any] = []
        self._last_pts = None
        self._resized_from: set[tuple[int, int]] = set()
        self.frames = 0
        self.audio_packets = 0
        self._closed = False

    def _open_stream(self, h: int, w: int) -> None:
        self.size = (h + h % 2, w + w % 2)
        stream = self.container.add_stream("libx264", rate=self.fps, options=self.options)
        stream.height, stream.width = self.size
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        self.stream = stream

    def _fit(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.size is None:
            self._open_stream(h, w)
        sh, sw = self.size
        if (h, w) == (sh, sw):
            return image
        if h + h % 2 == sh and w + w % 2 == sw:  # odd size: repeat the last row / column
            return np.pad(image, ((0, sh - h), (0, sw - w), (0, 0)), mode="edge")
        if (h, w) not in self._resized_from:
            self._resized_from.add((h, w))
            log.warning("output %s: frames changed size to %dx%d; scaling them to the stream's %dx%d", self.path, w, h, sw, sh)
        return cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)

    def _pts(self, frame: Frame) -> int:
        if frame.pts is not None and frame.time_base is not None:
            pts = frame.pts if frame.time_base == self.time_base else int(round(frame.pts * frame.time_base / self.time_base))
        else:
            pts = int(round(frame.index / (self.fps * self.time_base)))
        if self._last_pts is not None and pts <= self._last_pts:
            log.debug("output %s: timestamp %d not after %d; using %d", self.path, pts, self._last_pts, self._last_pts + 1)
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def write(self, frame: Frame, image: np.ndarray) -> None:
        image = self._fit(image)  # even height and width, as yuv420p needs
        # OpenCV's RGB -> I420 (BT.601, limited range: what FFmpeg's scaler does by default)
        # costs 0.9-1.0 ms of CPU for a 640x480 frame where handing the encoder rgb24 costs
        # 2.2-2.9 ms: CPU that inference needs on small machines (decoded, both give the same
        # colours; tests/io/test_sinks.py checks them).
        vf = av.VideoFrame.from_ndarray(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        vf.pts = self._pts(frame)
        vf.time_base = self.time_base
        for packet in self.stream.encode(vf):
            self.container.mux(packet)
        self.frames += 1
        if self._audio_backlog:
            backlog, self._audio_backlog = self._audio_backlog, []
            self.write_audio(backlog)

    def write_audio(self, packets: list[Any]) -> None:
        if self.audio_out is None or not packets:
            return
        if self.stream is None:  # the header needs every stream: hold audio until the first frame
            self._audio_backlog.extend(packets)
            return
        for packet in packets:
            packet.stream = self.audio_out
            try:
                self.container.mux(packet)
                self.audio_packets += 1
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("output %s: an audio packet could not be written (%s); skipped", self.path, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.stream is not None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()
            if self.frames == 0:
                log.warning("output %s: no frames were written; removing the empty file", self.path)
                self.path.unlink(missing_ok=True)
