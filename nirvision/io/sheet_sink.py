"""``--contact-sheet``: a PNG of a few frames, NIR beside its colours, next to each video output.

For a batch of recordings an analyst can look through the sheets instead of opening every video.
A file with a known frame count gives frames spread evenly from its first to its last; a file
whose header gives no count (MKV, WebM, TS) too, from a sample thinned as the file goes on (every
frame, then every 2nd, 4th, ...: at most ``2 * rows`` kept); a live source one frame every
``LIVE_INTERVAL_S`` seconds of its clock, the newest ``count`` of them. Each row is one frame, with its time in the video;
where that is not the recording's own time (a range cut with ``--start``), the recording's time
too, so the moment can be found in the original; and the wall-clock time where it is known (a
recording's creation time, a live source's clock), so an event can be placed in the day.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..visual import save_grid
from .base import Frame, Sink, SourceInfo
from .compose import as_displayed
from .redact import printable

log = logging.getLogger(__name__)

ROWS = 6
MAX_WIDTH = 320  # each picture at most this wide on the sheet
LIVE_INTERVAL_S = 60.0


def sheet_path(video: str | Path) -> Path:
    """``night.mp4`` -> ``night_sheet.png`` beside it."""
    video = Path(video)
    return video.with_name(f"{video.stem}_sheet.png")


def sheet_paths(videos: list[Path]) -> list[Path]:
    """Each video's sheet; videos of one name in one folder (``a.mp4``, ``a.mkv``; also ``A.mp4``,
    which meets ``a.mp4`` on file systems that ignore case) get ``a_mp4_sheet.png``, ``a_mkv_sheet.png``."""
    paths = [sheet_path(v) for v in videos]
    keys = [str(p).lower() for p in paths]
    return [p if keys.count(k) == 1 else v.with_name(f"{v.stem}_{v.suffix[1:].lower()}_sheet.png") for v, p, k in zip(videos, paths, keys)]


def sheets_for(outputs, info: SourceInfo) -> list["ContactSheetSink"]:
    """A sheet beside each video file among ``outputs`` (views and folders get none), named by
    ``sheet_paths``; InputError for one that is among the source's images (``check_sheets``)."""
    from .specs import is_video_file

    videos = [Path(spec) for spec in map(str, outputs) if is_video_file(spec)]
    paths = sheet_paths(videos)
    check_sheets(paths, info)
    return [ContactSheetSink(p, info) for p in paths]


def check_sheets(paths: list[Path], info: SourceInfo) -> None:
    """InputError for a sheet that is one of the source's images (it would replace it), or that
    the source's folder or glob would read as an image the next time (the same command run
    again took the first run's sheet for a frame, then replaced it), as an output that is the
    source is refused. Before anything is opened. A batch's inputs are videos: no sheet meets one."""
    import fnmatch
    import os

    from .image_source import is_glob
    from .specs import same_file

    if info.kind != "images":
        return
    spec = str(info.description)
    for path in paths:
        if any(same_file(path, f) for f in info.files):
            why = "is one of the source's images (an earlier run's sheet?), which it would replace"
        elif is_glob(spec) and not Path(spec).is_dir():
            pattern, target = os.path.abspath(spec), os.path.abspath(path)
            if not any(fnmatch.fnmatchcase(target, p) for p in (pattern, pattern.replace(f"**{os.sep}", ""))):
                continue
            why = f"matches the source {spec!r}, so that the next run would read it as a frame"
        elif Path(spec).is_dir() and Path(os.path.realpath(path)).parent == Path(os.path.realpath(spec)):
            why = f"lies in the source folder {spec}, so that the next run would read it as a frame"
        else:
            continue
        raise InputError(f"contact sheet {printable(path)}: {why}; expected the video output (which names the sheet) outside the "
                         "source's images")


class ContactSheetSink(Sink):
    """Collects ``rows`` frames (see the module's text) and writes the sheet when closed."""

    def __init__(self, path: str | Path, info: SourceInfo, rows: int = ROWS):
        self.path = Path(path)
        self.description = str(self.path)
        self.rows = rows
        self.sample_aspect_ratio = info.sample_aspect_ratio  # frames shown as a player shows them
        total = None if info.live else info.frames
        # the frame indexes to keep: spread over a known length, else by the clock
        self.wanted = sorted({int(round(k * (total - 1) / max(1, rows - 1))) for k in range(rows)}) if total else None
        self.info = info
        self.kept: list[tuple[list[str], np.ndarray, np.ndarray, bool]] = []  # (time labels, NIR, RGB, passed as recorded)
        self._next_time: float | None = None
        self._first_time: float | None = None
        # the newest frame seen but not kept, (position, frame, output time, image, recorded); its
        # labels and thumbnails are made only if the sheet ends on it (close), not for every frame
        self._last: tuple | None = None
        self._last_kept: float | None = None  # the position (output time) of the newest frame kept
        # a file of unknown length: an even sample of every ``_stride``-th frame, thinned as it grows
        self._sample: list[tuple[int, tuple]] | None = [] if not info.live and not total else None
        self._stride = 1
        self._seen = 0

    def _small(self, image: np.ndarray) -> np.ndarray:
        image = as_displayed(image, self.sample_aspect_ratio)
        h, w = image.shape[:2]
        if w <= MAX_WIDTH:
            return image.copy()
        return cv2.resize(image, (MAX_WIDTH, max(1, round(h * MAX_WIDTH / w))), interpolation=cv2.INTER_AREA)

    def _labels(self, frame: Frame, t: float) -> list[str]:
        """The output's time; the recording's where it differs; the wall-clock time where known."""
        labels = [clock(t)]
        info = self.info
        if info.live:
            labels.append(datetime.now().strftime("%Y-%m-%d %H:%M:%S"))
        elif frame.time is not None and info.kind == "file":
            own = frame.time - info.created_at  # as a player counts from the recording's first frame
            if abs(own - t) > 0.005:
                labels.append(f"rec {clock(own)}")
            if info.created is not None:
                labels.append((info.created + timedelta(seconds=own)).astimezone().strftime("%Y-%m-%d %H:%M:%S"))
        return labels

    def _row(self, frame: Frame, t: float, image: np.ndarray, recorded: bool) -> tuple:
        return self._labels(frame, t), self._small(frame.image), self._small(image), recorded

    def write(self, frame: Frame, image: np.ndarray) -> None:
        t = frame.time if frame.time is not None else float(frame.index)
        if self._first_time is None:
            self._first_time = t
        t -= self._first_time  # as the output counts: from 0
        recorded = frame.color is not None  # already in colour, passed through (--color-frames pass)
        if self.wanted is not None:
            if frame.index in self.wanted:
                self.kept.append(self._row(frame, t, image, recorded))
                self._last_kept = t
            else:  # a file shorter than its header said still ends with its last frame
                self._last = (t, frame, t, image, recorded)
            return
        if self._sample is not None:
            n, self._seen = self._seen, self._seen + 1
            if n % self._stride == 0:
                self._sample.append((n, self._row(frame, t, image, recorded)))
                if len(self._sample) > 2 * self.rows:
                    self._sample, self._stride = self._sample[::2], self._stride * 2
            else:
                self._last = (n, frame, t, image, recorded)
            return
        if self._next_time is None or t >= self._next_time:
            self.kept = (self.kept + [self._row(frame, t, image, recorded)])[-self.rows:]
            self._next_time = t + LIVE_INTERVAL_S

    def _spread(self) -> list:
        """``rows`` of the sampled frames spread evenly from the first to the last frame seen."""
        sample = list(self._sample)
        if self._last is not None and (not sample or self._last[0] > sample[-1][0]):
            sample.append((self._last[0], self._row(*self._last[1:])))
        if not sample:
            return []
        end = sample[-1][0]
        picked: list[int] = []
        for k in range(self.rows):
            target = k * end / max(1, self.rows - 1)
            best = min(range(len(sample)), key=lambda i: abs(sample[i][0] - target))
            if best not in picked:
                picked.append(best)
        return [sample[i][1] for i in sorted(picked)]

    def close(self) -> None:
        kept = self._spread() if self._sample is not None else list(self.kept)
        if self.wanted is not None and self._last is not None and len(kept) < len(self.wanted) and (not kept or self._last[0] > self._last_kept):
            kept.append(self._row(*self._last[1:]))
        if not kept:
            return
        h = max(r.shape[0] for _, _, r, _ in kept)
        w = max(r.shape[1] for _, _, r, _ in kept)
        nirs, rgbs = [], []
        for labels, nir, rgb, recorded in kept:
            nir = cv2.cvtColor(nir, cv2.COLOR_GRAY2RGB) if nir.ndim == 2 else nir
            nir, rgb = (cv2.resize(x, (w, h)) if x.shape[:2] != (h, w) else x for x in (nir, rgb))
            nir = np.ascontiguousarray(nir)
            for line, stamp in enumerate(labels):  # on a dark band, readable on a bright sky
                y = 14 + 13 * line
                (tw, _), _ = cv2.getTextSize(stamp, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
                band = nir[max(0, y - 11): y + 3, 2: 6 + tw]
                band[:] = band // 3
                cv2.putText(nir, stamp, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
            if recorded:  # not a colorization: the camera's own colours
                rgb = np.ascontiguousarray(rgb)
                cv2.putText(rgb, "as recorded", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(rgb, "as recorded", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            nirs.append(nir)
            rgbs.append(rgb)
        try:
            name = Path(self.info.description).name if self.info.kind == "file" else self.info.description
            save_grid(self.path, [np.stack(nirs), np.stack(rgbs)], [f"NIR: {name}" if len(name) <= 32 else f"NIR: ...{name[-29:]}", "colorized"])
            log.info("contact sheet: %s (%d frames)", self.path, len(kept))
        except OSError as exc:
            log.warning("contact sheet %s: not written (%s)", self.path, exc)


def clock(t: float) -> str:
    """Seconds as H:MM:SS.ss."""
    return f"{int(t // 3600)}:{int(t % 3600 // 60):02d}:{t % 60:05.2f}"
