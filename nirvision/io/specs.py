"""From the user's SOURCE and SINK strings to Source and Sink objects.

Sources: a video file, ``rtsp://...``, a camera (``0``, ``/dev/video0``), a folder or glob of
images, ``synthetic:WIDTHxHEIGHT[@FPS][:FRAMES]``. Sinks: a video file (.mp4, .mkv, .mov), a
folder (PNG images), ``preview:`` (a window), ``http://HOST:PORT`` (a live view for browsers),
``null:`` (frames counted and discarded).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputError
from .base import Frame, Sink, Source, SourceInfo
from .reconnect import ReconnectPolicy, parse_reconnect
from .redact import redact_url

SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]+):")
KINDS = "a video file, a folder or glob of images, rtsp://..., a camera (0 or /dev/video0) or synthetic:WIDTHxHEIGHT[@FPS][:FRAMES]"


def source_kind(spec: str) -> str:
    """file, images, rtsp, camera or synthetic; an InputError for an unknown scheme."""
    from .image_source import is_glob

    if spec[:10].lower() == "synthetic:":
        return "synthetic"
    m = SCHEME.match(spec)
    if m and not Path(spec).exists():
        scheme = m["scheme"].lower()
        if scheme in ("rtsp", "rtsps"):
            return "rtsp"
        if len(scheme) > 1:  # one letter would be a Windows drive
            raise InputError(f"source {redact_url(spec)}: unknown scheme {scheme!r}; expected {KINDS}")
    if spec.isdigit() or re.fullmatch(r"/dev/video\d+", spec):
        return "camera"
    if is_glob(spec) and not Path(spec).exists():
        return "images"
    if Path(spec).is_dir():
        return "images"
    if str(spec).endswith(("/", os.sep)) and not Path(spec).exists():  # meant as a folder, which is not there
        raise InputError(f"source {spec}: folder not found; expected a folder of videos or images, a video file, or {KINDS.split(', ', 2)[2]}")
    return "file"


def open_source(spec: str, *, reconnect: str | int | None = 3, open_timeout: float = 10.0, read_timeout: float = 5.0, live: bool | None = None,
                stop=None, **options) -> Source:
    """Open SOURCE (see the module docstring). Options: ``max_frames``, ``fps`` (image folders),
    ``seed`` (synthetic), ``audio`` (files), ``width``/``height`` (cameras); ``live=True``
    paces a synthetic clip in real time; ``reconnect`` (attempts or ``"forever"``),
    ``open_timeout`` and ``read_timeout`` (seconds) for RTSP and cameras; ``stop`` (a
    ``threading.Event``, RTSP) ends the first connection's attempts when set (a signal handler's
    way to stop them: the source then raises KeyboardInterrupt); ``color_frames`` (colorize or
    pass, ``nirvision.io.color_frames``)."""
    spec = str(spec)
    kind = source_kind(spec)
    if "color_frames" in options:  # before a camera or a connection is opened
        from .color_frames import check_color_frames

        options["color_frames"] = check_color_frames(options["color_frames"])
    policy = ReconnectPolicy(attempts=parse_reconnect(reconnect))
    if kind == "synthetic":
        from .synthetic import SyntheticSource

        return SyntheticSource(spec, live=bool(live), **options)
    if kind == "rtsp":
        from .rtsp_source import RTSPSource

        return RTSPSource(spec, open_timeout=open_timeout, read_timeout=read_timeout, policy=policy, stop=stop, **options)
    if kind == "camera":
        from .camera_source import CameraSource

        return CameraSource(spec, policy=policy, **options)
    if kind == "images":
        from .image_source import ImageSource

        return ImageSource(spec, **options)
    from .file_source import FileSource

    return FileSource(spec, **options)


def is_video_file(spec) -> bool:
    """Whether output ``spec`` names a video file (not a live view, a folder or the preview)."""
    from .video_sink import VIDEO_SUFFIXES

    return "://" not in str(spec) and not is_folder_spec(spec) and Path(str(spec)).suffix.lower() in VIDEO_SUFFIXES


NULL_SPECS = ("null", "null:")


def is_null_spec(spec) -> bool:
    """``null:`` (or ``/dev/null``): frames colorized and counted, then discarded, as FFmpeg's
    ``-f null``: for timing a whole run, or alongside a live view."""
    spec = str(spec)
    return spec in NULL_SPECS or (os.path.exists(spec) and os.path.realpath(spec) == os.path.realpath(os.devnull))


def is_folder_spec(spec) -> bool:
    """An output written with a trailing slash is a folder, whatever its name (``run.1/``,
    ``night.2026.12.01/``), as a shell user means it."""
    return str(spec).endswith(("/", os.sep))


def opening_order(specs: list[str]) -> list[str]:
    """Outputs in the order to open them: video files last. Opening one truncates a file already
    at its path, so whatever else may fail to open (a busy port, a folder) fails before that."""
    return sorted(specs, key=is_video_file)


def check_range_source(source: str, what: str) -> None:
    """A time range (``what``: the options that asked for one) needs a video file as its source."""
    if source_kind(str(source)) != "file":
        raise InputError(f"{what}: source {redact_url(str(source))} is not a video file; expected one (a time range of a recording)")


def _output_key(spec: str) -> str:
    """What two outputs share when they are one: a path resolved (``a/../x.mp4`` is ``x.mp4``),
    a URL or ``preview:`` as written (less case in the scheme and host)."""
    spec = str(spec)
    if spec in ("preview", "preview:"):
        return "preview:"
    if is_null_spec(spec):
        return "null:"
    if "://" in spec:
        scheme, _, rest = spec.partition("://")
        host, sep, path = rest.partition("/")
        return f"{scheme.lower()}://{host.lower()}{sep}{path}".rstrip("/")
    return str(Path(spec).expanduser().resolve())


def check_distinct_outputs(outputs: list[str]) -> None:
    """InputError for an output given twice (the same resolved path or URL): two writers would
    open one file (or one port) against each other. Before anything is opened."""
    seen: dict[str, str] = {}
    for spec in outputs:
        key = _output_key(spec)
        if key in seen:
            same = f" (the same as {seen[key]})" if str(seen[key]) != str(spec) else ""
            raise InputError(f"output {redact_url(str(spec))}: given twice{same}; expected each output once")
        seen[key] = redact_url(str(spec))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file, now or once written: symbolic links and
    ``..`` resolved, also through folders that do not exist yet (``new/../in.mp4`` is
    ``in.mp4`` once ``new`` is made), and hard links of an existing file."""
    a, b = Path(a), Path(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_not_source(outputs: list[str], source: str) -> None:
    """InputError for an output that is the source file itself (before anything is opened)."""
    if not Path(str(source)).is_file():
        return
    for spec in outputs:
        if same_file(str(spec), str(source)):
            raise InputError(f"output {redact_url(str(spec))}: is the source itself; expected another path")


URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]+)://")
OUTPUTS = "a video file (.mp4, .mkv, .mov), a folder for PNG images, http://HOST:PORT (a live view), preview: or null:"


def check_output_kinds(outputs: list[str]) -> None:
    """InputError for an output URL other than ``http://`` (before anything is opened): taken
    as a path, ``rtsp://user:password@nvr/live`` became the folders ``rtsp:/user:password@nvr``,
    the password in the folder's name and in every message. Its password is masked."""
    for spec in map(str, outputs):
        m = URL.match(spec)
        scheme = m["scheme"].lower() if m else None
        if scheme is None or scheme == "http":
            continue
        if scheme == "https":
            raise InputError(f"output {redact_url(spec)}: the live view serves plain HTTP, not https; expected http://HOST:PORT (for TLS, "
                             "put the view behind a proxy that serves https)")
        why = " (nirvision sends no stream to a server: record a file, or serve a live view)" if scheme in (
            "rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "rtp") else ""
        raise InputError(f"output {redact_url(spec)}: {scheme}:// is not an output nirvision writes{why}; expected {OUTPUTS}")


def open_sink(spec: str, info: SourceInfo, *, side_by_side: bool = False, **options) -> Sink:
    """Open SINK for frames from a source described by ``info``. ``spec``: a video file
    (.mp4/.mkv/.mov; options ``crf``, ``preset``, ``audio``, ``threads``, and ``segment``: seconds a
    file, cutting the video into pieces, with ``keep``), ``preview:``, ``http://HOST:PORT`` or a
    folder for PNGs, or ``null:`` (discarded; ``/dev/null`` too) (the video options do not apply to these)."""
    spec = str(spec)
    check_output_kinds([spec])
    if spec in ("preview", "preview:"):
        from .preview_sink import PreviewSink

        return PreviewSink(side_by_side=side_by_side)
    if spec.lower().startswith(("http:", "https:")):
        from .http_sink import HttpViewSink

        return HttpViewSink(spec, side_by_side=side_by_side, title=info.description, sample_aspect_ratio=info.sample_aspect_ratio)
    if is_null_spec(spec):
        return NullSink()
    path = Path(spec)
    folder = is_folder_spec(spec)
    from .video_sink import VIDEO_SUFFIXES

    video_options = {k: v for k, v in options.items() if k in ("crf", "preset", "audio", "threads")}
    segment = options.get("segment")
    if path.suffix.lower() in VIDEO_SUFFIXES and not folder:
        if segment:
            from .segment_sink import SegmentSink

            return SegmentSink(path, info, segment, side_by_side=side_by_side, keep=options.get("keep"), **video_options)
        from .video_sink import VideoSink

        return VideoSink(path, info, side_by_side=side_by_side, **video_options)
    if path.suffix and not path.is_dir() and not folder:
        shown = redact_url(spec)
        raise InputError(f"output {shown}: unknown output type {path.suffix!r}; expected a video file ({', '.join(sorted(VIDEO_SUFFIXES))}), "
                         f"a folder for PNG images (end it with / for a folder of that name: {shown}/), preview: or null:")
    from .image_sink import ImageFolderSink

    return ImageFolderSink(path, side_by_side=side_by_side, names=info.names, files=info.files, zero=info.created_at if info.kind == "file" else None)


def parse_time(text: str, flag: str) -> float:
    """'90', '90.5', '1:30', '0:01:30.5' -> seconds; InputError naming ``flag`` otherwise."""
    parts = str(text).strip().split(":")
    try:
        if not 1 <= len(parts) <= 3 or not all(p.replace(".", "", 1).isdigit() for p in parts) or any("." in p for p in parts[:-1]):
            raise ValueError
        values = [float(p) for p in parts]
        if any(v >= 60 for v in values[1:]):  # minutes and seconds after a colon
            raise ValueError
    except ValueError:
        raise InputError(f"{flag} {text}: expected a time such as 90, 90.5, 1:30 or 0:01:30.5") from None
    return sum(v * 60 ** k for k, v in enumerate(reversed(values)))


def parse_positive(text: str, flag: str) -> int:
    """A whole number of at least 1 from ``text`` (an option's value); InputError naming ``flag`` otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{flag}: expected a positive integer or auto, got {text!r}")
    return value


def _glob_base(spec: str) -> Path:
    """The fixed folder a glob starts from (``cam*/x/*.png`` -> ``.``, ``data/**/*.png`` -> ``data``)."""
    from .image_source import is_glob

    parts = Path(spec).parts
    for i, part in enumerate(parts):
        if is_glob(part):
            return Path(*parts[:i]) if i else Path(".")
    return Path(spec)


def check_report_path(text: str | Path, what: str, suffixes: tuple[str, ...], inputs: list[str | Path]) -> Path:
    """A report / chart file (``--json``, ``--grid``, ``--plot``) checked before any work: its
    type (``suffixes``), a writable place, and not one of the run's ``inputs`` (files, folders or
    globs) nor a picture or video inside an input folder, where it would replace a frame or be
    read as one by the next run. Links are followed, as the write would follow them."""
    from .file_source import VIDEO_INPUTS
    from .image_source import IMAGE_SUFFIXES, is_glob

    path = check_writable_file(str(text), what)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{what} {text}: expected a file name ending in {' or '.join(suffixes)}")
    target = Path(os.path.realpath(path))
    media = path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_INPUTS
    for spec in inputs:
        if spec is None or "://" in str(spec):
            continue
        spec = str(spec)
        folder = _glob_base(spec) if is_glob(spec) else Path(spec)
        if not is_glob(spec) and not folder.is_dir():
            if same_file(path, spec):
                raise InputError(f"{what} {text}: is the input {spec}; expected a path outside the inputs")
            continue
        base = Path(os.path.realpath(folder))
        if media and (target == base or base in target.parents):
            raise InputError(f"{what} {text}: lies in the input {spec}, where it would "
                             f"{'replace an input image' if path.exists() else 'be read as an input by the next run'}; expected a path outside it")
    return path


def check_writable_file(text: str, what: str) -> Path:
    """A file path ``what`` (an option) can write, checked before any work and without making
    anything: not a folder, under a folder (or folders still to be made) that can be written."""
    path = Path(text)
    if path.is_dir() or str(text).endswith(("/", os.sep)):
        raise InputError(f"{what} {text}: is a folder; expected a file name, e.g. {path / 'report.json'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what} {text}: {parent} is a file, not a folder; expected a file path in a folder")
    if not os.access(parent if not path.exists() else path, os.W_OK):
        raise InputError(f"{what} {text}: {path if path.exists() else parent} is not writable; expected a writable file path")
    return path



class NullSink(Sink):
    """Counts the frames it is given and keeps none of them (``null:``)."""

    description = "null: (frames discarded)"

    def __init__(self):
        self.frames = 0

    def write(self, frame: Frame, image) -> None:
        self.frames += 1
