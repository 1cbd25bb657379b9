"""A recording cut into files of a set duration: ``-o cam.mp4 --segment 15m``.

Each piece is a complete video of its own (``VideoSink``: H.264 starting with a key frame, its
timestamps from 0, the source's audio of its span; fragmented when the source is live, so that a
killed recording loses only its last second). Live sources are cut by the wall clock, at
multiples of the duration (15-minute pieces start at :00, :15, :30 and :45; the first one is
shorter), and each piece is named after the local time of its first frame:
``cam_20261201-201500.mp4``. Recorded videos and folders are cut by their own clock, from their
first frame, and the pieces numbered: ``cam_000.mp4``, ``cam_001.mp4``. A name already taken
(an earlier run) gets ``_2``, ``_3``: nothing is overwritten. With ``keep`` (live only) a
recording around the clock keeps the newest pieces of its name and deletes older ones.

Audio packets are routed by their time, each to the piece whose span holds its start: sound
demuxed ahead of the pictures waits for them, and sound from before a cut that arrives after it
goes to the piece before, which stays open until the audio has passed the cut.
"""
from __future__ import annotations

import logging
import math
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .output_lock import LOCK_SUFFIX, OutputClaim, remove_unheld
from .base import Frame, Sink, SourceInfo

log = logging.getLogger(__name__)

MIN_SEGMENT_S = 1.0
# the piece before a cut waits this long (the source's seconds) for audio from before the cut
AUDIO_WAIT_S = 10.0
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, flag: str = "--segment") -> float:
    """'90', '90s', '15m', '1.5h' -> seconds (at least ``MIN_SEGMENT_S``); InputError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m else math.nan
    if not m or not seconds >= MIN_SEGMENT_S:
        raise InputError(f"{flag} {text}: expected a duration of at least {MIN_SEGMENT_S:g} s, such as 90, 90s, 15m or 1h")
    return seconds


class SegmentSink(Sink):
    """Write frames into consecutive video files of ``seconds`` each; see the module's text."""

    def __init__(self, path: str | Path, info: SourceInfo, seconds: float, side_by_side: bool = False, keep: int | None = None,
                 open_piece: Callable[[Path, SourceInfo], Sink] | None = None, clock: Callable[[], float] = time.time, **video_options):
        from .video_sink import VIDEO_SUFFIXES, VideoSink, prepare_output_path

        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"output {self.path}: --segment cuts video files; expected a file ending in {', '.join(sorted(VIDEO_SUFFIXES))}")
        prepare_output_path(self.path, "output")
        self.seconds = float(seconds)
        if keep is not None and not info.live:
            raise InputError(f"output {self.path}: --keep {keep}: deletes old pieces of a live source's recording around the clock; "
                             f"source {info.description or 'given'} is not live (a recorded video or folder: every piece is kept), "
                             "expected no --keep")
        if keep is not None and keep < 1:
            raise InputError(f"output {self.path}: --keep {keep}: expected at least 1 (the newest pieces are kept, older ones deleted)")
        self.keep = keep
        self._claim = OutputClaim(self.path)  # two runs cutting one recording would write the same pieces
        self.deleted = 0
        self.info = info
        self.live = info.live
        self.side_by_side = side_by_side
        self.clock = clock
        said: set = set()  # messages said once for all the pieces (an odd size padded)
        self._open_piece = open_piece or (lambda p, i: VideoSink(p, i, side_by_side=side_by_side, said=said, **video_options))
        how = "by the wall clock" if self.live else "by the video's clock"
        self.description = f"{self.path.with_name(self.path.stem + '_*' + self.path.suffix)} (pieces of {self.seconds:g} s, {how})"
        self.paths: list[Path] = []  # every piece, in order
        self.current: Sink | None = None
        self._audio: list[Any] = []  # audio packets not yet given to a piece
        self._before: Sink | None = None  # the piece before the cut, kept open for its late audio
        self._before_end: float | None = None
        self._key = -1
        self._t0: float | None = None  # the first frame's source time (s): recorded videos cut from it
        self._last_t: float | None = None
        self._closed = False

    # --- where to cut -------------------------------------------------------------------------
    def _source_time(self, frame: Frame) -> float:
        t = frame.time
        if t is None:
            t = frame.index / float(self.info.fps or 25)
        if self._last_t is not None and t < self._last_t:  # a clock that went back (a reconnect): keep the order
            t = self._last_t
        self._last_t = t
        return t

    def _wall_time(self, frame: Frame) -> float:
        """The wall-clock time the frame was read (``t_read`` is ``perf_counter``)."""
        if frame.t_read:
            return self.clock() - max(0.0, time.perf_counter() - frame.t_read)
        return self.clock()

    def _piece_key(self, frame: Frame, t: float) -> tuple[int, float]:
        if self.live:  # multiples of the duration on the local clock (a day's pieces start at midnight)
            wall = self._wall_time(frame)
            offset = datetime.fromtimestamp(wall).astimezone().utcoffset()
            local = wall + (offset.total_seconds() if offset is not None else 0.0)
            return int(local // self.seconds), wall
        if self._t0 is None:
            self._t0 = t
        # a microsecond's tolerance: frame 35 of a clip from 0.4 s at 25 fps is 1.4 - 0.4 = 0.99999... s in
        # binary floating point, and would end the first 1-second piece one frame late
        return int((t - self._t0) / self.seconds + 1e-6), t

    def _name(self, stamp: float) -> Path:
        if self.live:
            label = datetime.fromtimestamp(stamp).strftime("%Y%m%d-%H%M%S")
        else:
            label = f"{len(self.paths):03d}"
        path, n = self.path.with_name(f"{self.path.stem}_{label}{self.path.suffix}"), 2
        while path.exists() or path in self.paths:
            path, n = self.path.with_name(f"{self.path.stem}_{label}_{n}{self.path.suffix}"), n + 1
        return path

    # --- writing --------------------------------------------------------------------------------
    def write(self, frame: Frame, image: np.ndarray) -> None:
        t = self._source_time(frame)
        key, stamp = self._piece_key(frame, t)
        if self.current is None or key != self._key:  # (the local clock may go back an hour: a cut too)
            self._cut(t, self._name(stamp))
        self._key = key
        self._route_audio(t)
        self.current.write(frame, image)

    def _cut(self, t: float, path: Path) -> None:
        """Close the piece before the last one, keep the last open for its late audio, start ``path``."""
        self._finish_before()
        if self.current is not None:
            if getattr(self.current, "audio_out", None) is not None:
                self._before, self._before_end = self.current, t
            else:
                self.current.close()
            self.current = None
        self.current = self._open_piece(path, self.info)
        self.paths.append(path)
        log.info("output %s: writing %s", self.path, path)
        if self.keep:
            self._prune()

    def _prune(self) -> None:
        """``keep``: delete the oldest pieces of this recording's name (this run's and earlier
        runs', told by their names: ``stem_YYYYmmdd-HHMMSS[_N].suffix``) beyond the newest ``keep``,
        with their lock files where no run holds them (a killed run leaves its pieces' behind)."""
        piece = re.escape(self.path.stem) + r"_\d{8}-\d{6}(?:_\d+)?" + re.escape(self.path.suffix)
        pattern, locked = re.compile(piece + "$"), re.compile(r"\.(" + piece + ")" + re.escape(LOCK_SUFFIX) + "$")
        try:  # oldest first by when they were last written: names follow the local clock, which can go back (DST)
            names = [p.name for p in self.path.parent.iterdir()]
            pieces = sorted((self.path.parent / n for n in names if pattern.match(n) and (self.path.parent / n).is_file()),
                            key=lambda p: (p.stat().st_mtime, p.name))
        except OSError as exc:
            log.warning("output %s: cannot list %s to delete old pieces (%s)", self.path, self.path.parent, exc)
            return
        writing = {self.paths[-1]} | ({self.paths[-2]} if self._before is not None and len(self.paths) > 1 else set())
        old = [p for p in pieces if p not in writing]
        # the pieces being written count whether or not they are on disk yet (a file appears at its first frame)
        for p in old[: max(0, len(old) + len(writing) - self.keep)]:
            try:
                p.unlink()
                self.deleted += 1
                log.info("output %s: deleted the old piece %s (--keep %d)", self.path, p.name, self.keep)
            except OSError as exc:
                log.warning("output %s: cannot delete the old piece %s (%s)", self.path, p, exc)
                continue
            remove_unheld(p)
        # lock files of pieces gone before (deleted while this was not done), unless a run holds them
        for m in filter(None, map(locked.match, names)):
            if not (self.path.parent / m.group(1)).exists() and self.path.parent / m.group(1) not in writing:
                remove_unheld(self.path.parent / m.group(1))

    def _finish_before(self) -> None:
        before, self._before = self._before, None
        if before is not None:
            before.close()

    def write_audio(self, packets: list[Any]) -> None:
        """Held until frames show which piece they belong to: a source demuxes sound a little
        ahead of its pictures, and a cut may fall in between."""
        self._audio.extend(packets)

    def _route_audio(self, now: float | None) -> None:
        """Give the held audio that starts before ``now`` (the frame about to be written; None:
        all of it) to its piece: before the last cut, the piece before; else the current one."""
        keep, to_before, to_current = [], [], []
        for packet in self._audio:
            when = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
            if now is not None and when is not None and when >= now:
                keep.append(packet)
            elif self._before is not None and when is not None and when < self._before_end:
                to_before.append(packet)
            else:
                to_current.append(packet)
        self._audio = keep
        if self._before is not None:
            if to_before:
                self._before.write_audio(to_before)
            if to_current or now is None or now - self._before_end > AUDIO_WAIT_S:  # the audio went past the cut
                self._finish_before()
        if to_current and self.current is not None:
            self.current.write_audio(to_current)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.current is not None:
                self._route_audio(None)
        finally:  # every piece is finalized, whatever failed before
            try:
                self._finish_before()
            finally:
                try:
                    if self.current is not None:
                        self.current.close()
                finally:
                    self._claim.release()
        kept = [p for p in self.paths if p.exists()]
        log.info("output %s: %d piece(s) written", self.path, len(kept))
        self.paths = kept
