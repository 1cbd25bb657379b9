"""The two interfaces of ``nirvision.io``: a Source yields Frames, a Sink writes colorized frames.

Data flows source -> engine -> backend -> sink (``nirvision.runtime.engine``). A Source is an
iterable of ``Frame`` (decoded NIR images with their timestamps); ``live`` sources (RTSP,
cameras) produce frames at their own pace and may be dropped from when inference falls
behind, the others (files, folders, synthetic clips) never are.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, Callable, Iterator

import numpy as np


@dataclass(eq=False)
class Frame:
    """One decoded frame of a source.

    ``image`` is uint8 H x W (NIR; colour input is reduced to one channel before inference).
    ``pts`` counts ``time_base`` units (``None`` where the source has no clock; sinks then
    number frames at the source's rate). ``audio`` holds the demuxed audio packets that came
    before this frame in the source, for sinks that copy audio. ``t_read`` is
    ``time.perf_counter()`` when the frame left the source (for end-to-end latency). ``color``
    is the frame as uint8 RGB (H x W x 3) where it goes to the outputs unchanged, without
    inference (``--color-frames pass``: a day/night camera's day mode, ``io.color_frames``).
    """

    image: np.ndarray
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    name: str | None = None
    audio: list[Any] = field(default_factory=list)
    t_read: float = 0.0
    color: np.ndarray | None = None

    @property
    def time(self) -> float | None:
        """Seconds from the source's clock, or ``None``."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


@dataclass
class SourceInfo:
    """What a sink needs to know about a source before the first frame."""

    kind: str  # file, rtsp, camera, images, synthetic
    description: str  # for logs and errors; never holds a password
    live: bool
    fps: Fraction | None = None
    time_base: Fraction | None = None
    frames: int | None = None  # total when known (files, folders, synthetic clips)
    width: int | None = None  # as frames are shown (a file's turned upright as its display matrix says)
    height: int | None = None
    audio_stream: Any = None  # a PyAV audio stream to copy from, or None
    audio_streams: tuple[Any, ...] = ()  # every audio stream to copy (a file's tracks; the first is audio_stream)
    names: tuple[str, ...] = ()  # the names frames carry, in order (image files: paths relative to their folder)
    files: tuple[Any, ...] = ()  # the files those frames come from (sinks must not write over them)
    tags: dict[str, str] = field(default_factory=dict)  # a recorded video's container tags worth keeping (title, location, ...)
    created: datetime | None = None  # a recorded video's creation time (UTC), as its container gives it
    created_at: float = 0.0  # the source time (s, as Frame.time) at which ``created`` holds: the video's first frame
    sample_aspect_ratio: Fraction | None = None  # a pixel's width / height where not square (720x576 for 4:3 or 16:9)
    color_frames: str = "colorize"  # pass: frames already in colour go out as they came (``io.color_frames``)


class Source(abc.ABC):
    """An iterable of ``Frame``; ``close()`` releases it (and stops a blocking read soon)."""

    info: SourceInfo

    def __init__(self) -> None:
        self.decode_errors = 0  # packets or files that failed to decode and were skipped
        self.reconnects = 0  # successful reconnections of a live source
        self.stale = 0  # live sources: frames that arrived in the burst of a (re)connection, left out but its newest
        self.frames_read = 0  # frames produced so far (including any the engine drops later)

    @property
    def live(self) -> bool:
        return self.info.live

    @property
    def continuous(self) -> bool:
        """Whether consecutive frames show one scene going on (videos, streams, cameras), not
        unrelated pictures (image folders)."""
        return self.info.kind != "images"

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Frames in order; ends at the end of the input (or when closed)."""

    def pending_audio(self) -> list[Any]:
        """Audio packets demuxed after the last frame (written at the end)."""
        return []

    def close(self) -> None:
        """Release files, sockets and devices. Safe to call twice and from another thread."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Sink(abc.ABC):
    """Receives each colorized frame: the source Frame (NIR) and its uint8 RGB (H x W x 3).

    ``side_by_side`` sinks get NIR | RGB images twice as wide (composed once by the engine).
    """

    side_by_side: bool = False
    description: str = "sink"

    @abc.abstractmethod
    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Write one RGB image (H x W x 3 uint8) belonging to ``frame``."""

    def write_audio(self, packets: list[Any]) -> None:
        """Copy the source's audio packets (only video file sinks do)."""

    def watch(self, status: Callable[[], dict]) -> None:
        """At the start of a run: ``status()`` gives the engine's counters (frames, fps, drops,
        reconnects) at any time, from any thread; sinks that report them (the live view) keep it."""

    def close(self) -> None:
        """Flush and finalize so that what was written is complete and plays."""
