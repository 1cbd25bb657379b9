"""Batches of recorded videos: ``nirvision colorize a.mp4 b.mkv -o out/``, a folder of videos, a glob.

Each video is colorized into the output folder under its own name (``out/a.mp4``, ``out/b.mkv``;
a folder's or glob's videos under their path below it, ``nvr/**/*.mp4`` -> ``out/day1/cam.mp4``;
a type the video writer does not produce, such as ``.avi``, becomes ``.mp4``, or ``x_avi.mp4`` beside
an ``x.mp4``: a name does not depend on the other inputs; two files of one name from different
folders become ``x.mp4`` and ``x_2.mp4``), one after another through one
backend, built once: ONNX files, compiled models and sessions are reused by every file of a
size. A video that cannot be opened or fails midway is reported and skipped and the others still
run; the exit code is then 1 and the last lines name each failure and its reason. An output
that would overwrite one of the inputs is refused before anything runs. Ctrl-C, SIGTERM or
SIGHUP finalizes the current output (it plays) and ends the batch; the last line and
``--stats-json`` say what stopped it (``stopped_by``), the video it cut short (``stopped_midway``,
not counted as colorized), those ``not_started``, every finished video's summary, the failures,
and the batch's wall time and FPS (file names in these lines with their control characters escaped: a
name cannot forge a line). With ``--skip-done`` a batch run again after an interruption
goes on where it stopped: a video whose output a run finished (recorded in the output folder's
``.nirvision-done.json``, ``done_manifest``; for outputs without an entry: one that holds all its
frames, counted in both files without decoding) is not redone, one whose output is short or
unreadable (stopped midway, killed) or came from another source is colorized again from its start.
A folder or glob that holds both videos and images is refused: which was meant cannot be told.
One that holds neither is refused saying what it holds (other types, ``.dav``; videos in day
folders below it) and the globs that take them; a glob that names a type (``"dav/*.asf"``)
takes its files as videos. ``--fps`` (image folders and globs) is refused: videos keep their timestamps.
"""
from __future__ import annotations

import glob
import os
import signal
import sys
import time
from pathlib import Path

from ..errors import InputError, OutputFull
from ..io.file_source import VIDEO_INPUTS
from ..io.redact import printable


NO_SPACE = "nirvision colorize: no space left for the outputs: the batch stops here"


def _videos_in(spec: str) -> list[Path] | None:
    """The videos a folder or glob names (in natural order), or None when it names images or is
    no folder or glob. InputError for one that holds both (``mixed_media``): a stray snapshot
    beside a night's videos must not turn the batch into a one-picture job. A glob that names a
    type (``"dav/*.asf"``) takes what it matches as videos, whatever the type: FFmpeg decides, and
    one it cannot read is a failure of the batch, as any broken video. One that holds neither
    kind is an InputError saying what it holds instead (``_no_media``: other types, an NVR's day
    folders), unless it holds nothing at all."""
    from ..io.image_source import IMAGE_SUFFIXES, _natural_key, is_glob, mixed_media

    path = Path(spec)
    if path.is_dir():
        found = list(path.iterdir())
    elif is_glob(spec) and not path.exists():
        found = [Path(p) for p in glob.glob(spec, recursive=True)]  # ** spans subfolders
    else:
        return None
    files = [p for p in found if p.is_file()]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = sorted((p for p in files if p.suffix.lower() in VIDEO_INPUTS), key=_natural_key)
    if images and videos:
        raise mixed_media(spec, videos, images)
    if images:
        return None  # images: one source, as before
    if videos:
        return videos
    if files and not path.is_dir() and _names_a_type(spec):
        return sorted(files, key=_natural_key)
    error = _no_media(spec, files, [p for p in found if p.is_dir()])
    if error is not None:
        raise error
    return None  # an empty folder, a glob that matches nothing: the image source says so


def _names_a_type(spec: str) -> bool:
    """Whether glob ``spec`` ends in a type of its own (``*.asf``, ``cam*.DAV``; not ``*``, ``*.*``
    or an image type): its user said what the files are."""
    from ..io.image_source import IMAGE_SUFFIXES, is_glob

    suffix = Path(spec).suffix
    return bool(suffix) and not is_glob(suffix) and suffix.lower() not in IMAGE_SUFFIXES


# types no camera records video in: not offered as a glob to try
NOT_MEDIA = {".txt", ".json", ".log", ".xml", ".csv", ".md", ".html", ".htm", ".pdf", ".ini", ".cfg", ".db", ".nfo", ".md5",
             ".sha256", ".zip", ".sh", ".bat", ".exe", ".dll", ".lnk", ".url"}


def _no_media(spec: str, files: list[Path], folders: list[Path]) -> InputError | None:
    """The error for a folder or glob that holds no video of a known type (``VIDEO_INPUTS``) and no
    image (``files``: what it holds at its top level): what it holds instead, by type (an NVR's
    ``.dav`` files), and what its subfolders hold (a folder a day), with the globs that take them.
    None when there is nothing to tell (it is empty)."""
    from ..io.image_source import IMAGE_SUFFIXES, is_glob

    as_glob = is_glob(spec) and not Path(spec).is_dir()
    below: dict[Path, Path] = {}  # the files under ``folders``, each once (a ** glob matches nested folders)
    for folder in folders:
        for top, _, names in os.walk(folder):
            for name in names:
                p = Path(top) / name
                if p.is_file():
                    below.setdefault(p.resolve(), p)
    if not files and not below:
        return None
    here = (spec if Path(spec).name.endswith("*") else str(Path(spec).parent / "*")) if as_glob else str(Path(spec) / "*")
    deep = str(Path(spec) / "**" / "*")  # nvr/ -> nvr/**/*; a glob of folders: nvr/* -> nvr/*/**/*
    inside = "in the folders it matches" if as_glob else "in its subfolders"
    said, picks, unknown = [], [], False
    if files:  # none of them of a known type
        said.append(_counted(files))
        picks += [f'"{here}{sfx}"' for sfx in _by_type(files) if sfx and sfx.lower() not in NOT_MEDIA]
        unknown = bool(picks)
    videos = [p for p in below.values() if p.suffix.lower() in VIDEO_INPUTS]
    images = [p for p in below.values() if p.suffix.lower() in IMAGE_SUFFIXES]
    image_picks = []  # each an image source of its own: offered as alternatives, not to give with the videos
    for kind, paths, into in (("video", videos, picks), ("image", images, image_picks)):
        if paths:
            said.append(f"{_count(len(paths), kind)} {inside} ({', '.join(_by_type(paths))})")
            into += [f'"{deep}{sfx}"' for sfx in _by_type(paths)]
    if below and not videos and not images:
        said.append(f"{_counted(list(below.values()))} {inside}")
        more = [f'"{deep}{sfx}"' for sfx in _by_type(list(below.values())) if sfx and sfx.lower() not in NOT_MEDIA]
        picks += more
        unknown = unknown or bool(more)
    head = (f"{f'glob {spec!r}: matches' if as_glob else f'folder {spec}: holds'} no videos or images" + (" of a known type" if files else "")
            + (" at its top level" if below and not as_glob else ""))
    if not picks and not image_picks:
        return InputError(f"{head}, but {', and '.join(said)}; expected videos ({', '.join(sorted(VIDEO_INPUTS))}) "
                          f"or images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    how = (" (a glob that names a type takes its files as videos: FFmpeg decides which it reads), or the files by name" if unknown
           else " (quoted: nirvision expands them; ** reaches into subfolders at any depth, and the outputs keep the folders)")
    give = " or ".join(([" ".join(picks)] if picks else []) + image_picks)
    return InputError(f"{head}, but {', and '.join(said)}; give {give}{how}")


def _by_type(paths: list[Path]) -> list[str]:
    """The suffixes of ``paths`` (as written: globs match case), most files first, none last."""
    counts = _type_counts(paths)
    return sorted(counts, key=lambda sfx: (not sfx, -counts[sfx], sfx))


def _type_counts(paths: list[Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.suffix] = counts.get(p.suffix, 0) + 1
    return counts


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _counted(paths: list[Path]) -> str:
    """``paths`` counted by type: "12 .dav files and 1 file without a type"."""
    counts = _type_counts(paths)
    items = [_count(counts[sfx], f"{sfx} file") if sfx else f"{_count(counts[sfx], 'file')} without a type" for sfx in _by_type(paths)]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def batch_inputs(sources: list[str]) -> list[Path] | None:
    """The video files that ``sources`` name when they make a batch (several sources, or one
    folder or glob of videos), each once; None for one source of any other kind, which runs as
    before. A file given by name is taken as a video whatever its type (FFmpeg decides), except
    an image."""
    from ..io.image_source import IMAGE_SUFFIXES, is_glob
    from ..io.redact import redact_url

    if len(sources) == 1:
        videos = _videos_in(sources[0])
        return None if videos is None else _each_once(videos)  # a folder reached twice through a link: once
    inputs: list[Path] = []
    for spec in sources:
        videos = _videos_in(spec)
        path = Path(spec)
        if videos is not None:
            inputs.extend(videos)
            continue
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            inputs.append(path)
            continue
        if path.is_dir():
            what = "a folder of images, or of no videos (a folder of images runs as the only source)"
        elif path.is_file():
            what = "an image (images run as a folder or glob, the only source)"
        elif is_glob(spec):
            what = "matches images, or no videos" if glob.glob(spec, recursive=True) else "matches no files"
        elif "://" in spec:
            what = "not a video file, or a folder or glob of videos"
        else:
            what = "not found"
        raise InputError(f"source {redact_url(spec)}: {what}; several sources make a batch of recorded videos "
                         "(files, folders or globs of them)")
    return _each_once(inputs)


def _each_once(paths: list[Path]) -> list[Path]:
    unique: dict[Path, Path] = {}
    for p in paths:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def glob_root(spec: str) -> Path:
    """The folder a glob's matches lie under: its path up to the first part with a wildcard
    (``nvr/**/*.mp4`` -> ``nvr``, ``*/x.mp4`` -> ``.``)."""
    from ..io.image_source import is_glob

    parts = Path(spec).parts
    fixed = next((i for i, part in enumerate(parts) if is_glob(part)), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _source_root(spec: str) -> Path | None:
    """The folder a folder or glob source names videos under (its own path, or the glob's fixed
    part); None for a file. Nothing is listed: the branches are ``_videos_in``'s."""
    from ..io.image_source import is_glob

    path = Path(spec)
    if path.is_dir():
        return path
    return glob_root(spec) if is_glob(spec) and not path.exists() else None


def batch_names(sources: list[str], inputs: list[Path]) -> list[str]:
    """Each input's name under the output folder, by the source that named it: a file by its
    name; a folder's or glob's videos by their path below the folder, or below the glob's fixed
    part (``nvr/**/*.mp4``: ``day1/cam.mp4``), so that a rerun with more day folders writes
    every video where the first run did (``--skip-done``)."""
    roots: dict[Path, Path] = {}
    for spec in sources:
        root = _source_root(spec)
        for video in (_videos_in(spec) or []) if root is not None else [Path(spec)]:
            roots.setdefault(video.resolve(), root if root is not None else video.parent)
    names = []
    for p in inputs:
        root = roots.get(p.resolve(), p.parent)
        try:
            names.append(Path(os.path.relpath(os.path.abspath(p), os.path.abspath(root))).as_posix())
        except ValueError:  # another drive (Windows)
            names.append(p.name)
        if names[-1].startswith(".."):  # reached through a link out of the root: by name
            names[-1] = p.name
    return names


def outside_output(inputs: list[Path], output: str, sources: list[str]) -> tuple[list[Path], list[Path]]:
    """(inputs, those left out): where the output folder lies inside a source folder or a glob's
    fixed part (``nvr/**/*.mp4`` with ``-o nvr/rgb``), videos under it are an earlier run's
    outputs, which the glob finds again. (An output folder that is a source folder itself is
    refused by ``batch_outputs``: its outputs would replace the sources.)"""
    folder = Path(output).resolve()
    if not any(root.resolve() in folder.parents for root in filter(None, map(_source_root, sources))):
        return list(inputs), []
    kept, left = [], []
    for p in inputs:
        (left if folder == p.resolve().parent or folder in p.resolve().parents else kept).append(p)
    return kept, left


def batch_outputs(inputs: list[Path], outputs: list[str], names: list[str] | None = None) -> list[Path]:
    """Each input's output file in the one output folder, under ``names`` (``batch_names``;
    default: the inputs' file names). InputError for anything else, or for an output that would
    overwrite an input.

    A name depends on its input, not on which others a run finds (``--skip-done`` finds an
    output where the run before wrote it, as an export grows): a type the writer produces keeps
    its name (``cam.mp4``, ``cam.mkv``); another (``cam.avi``, ``cam.ts``) becomes ``cam.mp4``
    unless an input of another type claims that name, and then keeps its type in it
    (``cam_avi.mp4``), as image outputs do (``f1_png.png``). Only inputs of one name from
    different folders (given by name) take turns, in the order given: ``x.mp4``, ``x_2.mp4``;
    the names taken as they are go first, so a real ``x_2.mp4`` keeps its own."""
    from ..io.redact import redact_url
    from ..io.video_sink import VIDEO_SUFFIXES

    from ..io.specs import is_null_spec

    if (len(outputs) != 1 or "://" in outputs[0] or Path(outputs[0]).suffix.lower() in VIDEO_INPUTS or Path(outputs[0]).is_file()
            or is_null_spec(outputs[0])):
        raise InputError(f"output {', '.join(map(redact_url, outputs))}: a batch of videos ({len(inputs)}) needs one output folder "
                         "(-o FOLDER), where each is written under its own name")
    folder = Path(outputs[0])
    sources = {p.resolve() for p in inputs}
    stems, types = [], []
    for src, rel in zip(inputs, names or [p.name for p in inputs]):
        sub = str(Path(rel).parent).replace("\\", "/")
        stems.append(src.stem if sub == "." else f"{sub}/{src.stem}")
        types.append(src.suffix.lower())
    # who claims STEM.mp4: names compared in lower case, as some file systems compare them
    claims: dict[str, set[str]] = {}
    for stem, kind in zip(stems, types):
        if kind not in VIDEO_SUFFIXES or kind == ".mp4":
            claims.setdefault(stem.lower() + ".mp4", set()).add(kind)
    wanted = []
    for stem, kind in zip(stems, types):
        if kind in VIDEO_SUFFIXES:
            wanted.append((stem, kind))
        elif claims[stem.lower() + ".mp4"] - {kind}:  # another type wants STEM.mp4 too
            wanted.append((f"{stem}_{kind.lstrip('.') or 'video'}", ".mp4"))
        else:
            wanted.append((stem, ".mp4"))
    chosen: list[str | None] = [None] * len(inputs)
    used: set[str] = set()
    for i, (stem, suffix) in enumerate(wanted):  # first every name as it is wanted
        if (stem + suffix).lower() not in used:
            chosen[i] = stem + suffix
            used.add(chosen[i].lower())
    for i, (stem, suffix) in enumerate(wanted):  # then the second of a name: x_2.mp4, in the order given
        n = 2
        while chosen[i] is None:
            name = f"{stem}_{n}{suffix}"
            if name.lower() not in used:
                chosen[i] = name
                used.add(name.lower())
            n += 1
    paths = []
    for name in chosen:
        out = folder / name
        if out.resolve() in sources:
            raise InputError(f"output {out}: would overwrite the source {out}; expected another output folder")
        paths.append(out)
    return paths


def already_done(src: Path, out: Path, max_frames: int | None, start: float | None = None, end: float | None = None) -> tuple[bool, str]:
    """Whether ``out`` already holds every frame that colorizing ``src`` writes (all of them, or
    those from ``start`` to before ``end``, at most ``max_frames``), and what was found, for the report.

    The output folder's record of finished runs (``done_manifest``) decides where it has an entry
    for ``out`` that still matches the file: done when it was finished from this source, unchanged
    since, for this range; not done when it came from another source. Without one (outputs of
    earlier versions, a manifest lost) the frames are counted in both files, without decoding."""
    from ..io.file_source import video_packets
    from .done_manifest import verdict

    if not out.is_file():
        return False, "no output yet"
    said = verdict(src, out, max_frames, start, end)
    if said is not None:
        return said
    have = video_packets(out)
    if have is None:
        return False, f"{out} cannot be read to its end (stopped before it was finalized)"
    want = video_packets(src, start, end)
    if want is None:
        return False, f"{src} cannot be counted"
    if max_frames is not None:
        want = min(want, max_frames)
    if have >= want > 0:
        return True, f"{out} holds all {want} frames"
    return False, f"{out} holds {have} of {want} frames"


def _close(source, sinks) -> None:
    for sink in sinks:
        sink.close()
    if source is not None:
        source.close()


def run_batch(args, inputs: list[Path], backend) -> int:
    """Colorize every input into its output through ``backend`` (closed at the end); the exit code.

    The last line and ``--stats-json`` say how the batch ended (``stopped_by``: "end of input",
    or the signal, "preview closed", "error"), which videos were colorized to their end
    (``files``), the one a stop cut short (``stopped_midway``, with its frames and of how many:
    it plays, but is no finished video), those never started (``not_started``), failed and
    skipped ones, and the batch's frames, wall time and FPS: a monitoring script tells an
    interrupted night from a finished one, and what is left to do."""
    from ..errors import usage_errors
    from ..io import open_sink, open_source
    from ..io.output_lock import OutputBusy
    from ..runtime.engine import prepare_backend
    from ..io.sheet_sink import ContactSheetSink, sheet_paths
    from .colorize import (announce_backend, catch_signals, check_stats_path, describe, encoder_threads, error_text, record_failure,
                           run_engine, write_stats)
    from .done_manifest import forget, record, source_state

    t0 = time.perf_counter()
    try:
        check_stats_path(args, inputs)  # before anything is recorded there
        if getattr(args, "fps", None) is not None:
            raise InputError(f"--fps {args.fps:g}: the frame rate given to image folders and globs; the videos of a batch keep their "
                             "own timestamps; expected no --fps")
        if len(args.output) == 1 and "://" not in args.output[0]:
            inputs, left = outside_output(inputs, args.output[0], args.source)
            if left:
                print(printable(f"nirvision colorize: leaving out {len(left)} video(s) under the output folder {args.output[0]} "
                                "(an earlier run's outputs)"), file=sys.stderr)
            if not inputs:
                raise InputError(f"output {args.output[0]}: every video the sources name lies in it; expected sources outside the output folder")
        outputs = batch_outputs(inputs, args.output, batch_names(args.source, inputs))
        sheets = dict(zip(outputs, sheet_paths(outputs)))
        check_stats_path(args, inputs, outputs)
        if args.keep is not None:
            raise InputError(f"--keep {args.keep}: deletes old pieces of a live recording; a batch of recorded videos keeps all of them")
    except BaseException as exc:
        record_failure(args, exc)  # refused before any video: said in --stats-json too
        backend.close()
        raise
    options = {"max_frames": args.max_frames, "start": args.start_s, "end": args.end_s, "input_bits": args.input_bits,
               "color_frames": args.color_frames}
    if args.no_audio:
        options["audio"] = False
    done: list[dict] = []  # summaries of the videos colorized to their end
    failed: list[tuple[Path, str]] = []
    skipped: list[dict] = []  # --skip-done: outputs complete from an earlier run; and those another run writes
    busy = 0  # of those skipped, the ones another run writes
    midway: dict | None = None  # the video a stop cut short
    handled = 0  # inputs dealt with, in order (colorized, skipped, failed, stopped midway); the others were not started
    stopped_by, error = "end of input", None
    code, announced, n = 0, False, len(inputs)
    try:
        # between videos (while one opens) a signal is noted and the batch ends before the next;
        # while a video runs, run_engine's own handlers finalize it and then give these back
        with catch_signals() as between:
            for i, (src, out) in enumerate(zip(inputs, outputs), 1):
                if between:
                    break
                if args.skip_done:
                    done_before, found = already_done(src, out, args.max_frames, args.start_s, args.end_s)
                    if done_before:
                        skipped.append({"source": str(src), "output": str(out), "reason": found})
                        handled = i
                        print(printable(f"nirvision colorize: [{i}/{n}] {src}: done before ({found}), skipped"), file=sys.stderr, flush=True)
                        continue
                    if out.exists():
                        print(printable(f"nirvision colorize: [{i}/{n}] {src}: colorizing again ({found})"), file=sys.stderr, flush=True)
                print(printable(f"nirvision colorize: [{i}/{n}] {src} -> {out}"), file=sys.stderr, flush=True)
                source, sinks = None, []
                before = source_state(src)
                try:
                    source = open_source(str(src), **options)
                    prepare_backend(backend, source.info)
                    sinks.append(open_sink(str(out), source.info, side_by_side=args.side_by_side, crf=args.crf, preset=args.preset,
                                           audio=not args.no_audio, threads=encoder_threads(args), segment=args.segment_s, keep=args.keep))
                    forget(out)  # rewritten now: until this run ends normally, no entry vouches for it
                    if args.preview:
                        sinks.append(open_sink("preview:", source.info, side_by_side=True))
                    if args.contact_sheet:  # named across the batch: x.mp4 and x.mkv each get one
                        sinks.append(ContactSheetSink(sheets[out], source.info))
                except OutputBusy as exc:  # an overlapping batch (cron) has it: its run colorizes it, this one goes on
                    _close(source, sinks)
                    other = f"another nirvision run (process {exc.pid})" if exc.pid else "another nirvision run"
                    skipped.append({"source": str(src), "output": str(out), "reason": f"{other} is writing it"})
                    busy += 1
                    handled = i
                    print(printable(f"nirvision colorize: [{i}/{n}] {src}: skipped, {other} is writing {out}"), file=sys.stderr, flush=True)
                    continue
                except usage_errors() as exc:
                    _close(source, sinks)
                    failed.append((src, str(exc)))
                    handled = i
                    print(printable(f"nirvision colorize: [{i}/{n}] skipped: {exc}"), file=sys.stderr)
                    if isinstance(exc, OutputFull):
                        print(NO_SPACE, file=sys.stderr)
                        stopped_by = "disk full"
                        break
                    continue
                except BaseException:
                    _close(source, sinks)
                    raise
                if between:  # a signal while it opened: nothing of it is written, it was not started
                    _close(source, sinks)
                    break
                if not announced:
                    announce_backend(args, backend)
                    announced = True
                handled = i
                try:
                    summary, code = run_engine(source, sinks, backend, args, progress=not args.no_progress, close_backend=False, stats=False)
                except KeyboardInterrupt:  # a third Ctrl-C: left at once, what it wrote is not known
                    midway = {"source": str(src), "output": str(out), "frames_out": None, "of": source.info.frames or None}
                    raise
                except Exception as exc:  # noqa: BLE001 - this file failed; the outputs are finalized, the others still run
                    reason = error_text(exc)
                    if out.exists():
                        reason += f" (the frames colorized before it are in {out})"
                    failed.append((src, reason))
                    print(printable(f"nirvision colorize: [{i}/{n}] failed: {reason}"), file=sys.stderr)
                    if isinstance(exc, OutputFull):  # the next would fail alike, each after its decoding and colorizing
                        print(NO_SPACE, file=sys.stderr)
                        stopped_by = "disk full"
                        break
                    continue
                print(printable(f"nirvision colorize: [{i}/{n}] {describe(summary)}"), file=sys.stderr)
                if summary["stopped_by"] != "end of input":  # a signal, or the preview window closed: the batch ends here
                    midway = {"source": str(src), "output": str(out), "frames_out": summary["frames_out"], "of": source.info.frames or None,
                              "summary": summary}
                    stopped_by = summary["stopped_by"]
                    break
                if summary["frames_out"]:
                    done.append(summary)
                record(out, src, summary, args.start_s, args.end_s, args.max_frames, before)  # --skip-done trusts it on a rerun
                if code:  # a signal as it ended
                    break
            if between and not code:
                code = 128 + int(between[0])
            if code and stopped_by == "end of input":
                stopped_by = signal.Signals(code - 128).name
    except BaseException as exc:
        stopped_by, error = _stopped_by(exc, error_text)
        raise
    finally:
        backend.close()
        wall = time.perf_counter() - t0
        frames = sum(s["frames_out"] for s in done)
        written = frames + ((midway or {}).get("frames_out") or 0)  # every frame this run wrote
        passed = sum(s.get("passed", 0) for s in done) + ((midway or {}).get("summary") or {}).get("passed", 0)
        not_started = [str(p) for p in inputs[handled:] if midway is None or str(p) != midway["source"]]
        print(printable(f"nirvision colorize: {_closing_line(n, done, midway, not_started, skipped, busy, failed, stopped_by, written, wall)}"), file=sys.stderr)
        for src, reason in failed:
            print(printable(f"  {src}: {reason}"), file=sys.stderr)
        if args.stats_json:
            stats = {"stopped_by": stopped_by, **({"error": error} if error else {}), "inputs": n, "colorized": len(done), "files": done,
                     "stopped_midway": midway, "not_started": not_started, "failed": [{"source": str(s), "error": e} for s, e in failed],
                     "skipped": skipped, "frames_out": written, "passed": passed, "wall_s": round(wall, 3),
                     "fps": round(written / wall, 3) if wall > 0 else 0.0}
            write_stats(args.stats_json, stats)
    if code:
        return code
    return 1 if failed else 0


def _stopped_by(exc: BaseException, error_text) -> tuple[str, str | None]:
    """How a batch that ``exc`` ended was stopped, named as the engine names it, and the error."""
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT", None
    if isinstance(exc, SystemExit):
        code = exc.code
        named = isinstance(code, int) and 128 < code < 128 + signal.NSIG
        return (signal.Signals(code - 128).name if named else f"exit status {code}"), None
    return "error", error_text(exc)


def _closing_line(n: int, done: list[dict], midway: dict | None, not_started: list[str], skipped: list[dict], busy: int,
                  failed: list, stopped_by: str, written: int, wall: float) -> str:
    """The batch's last line: "3 of 6 videos colorized (150 frames), 1 stopped midway (out/v4.mp4,
    10 of 60 frames), 2 not started (stopped by SIGINT); 1 failed:" with the batch's time and FPS."""
    frames = sum(s["frames_out"] for s in done)
    passed = sum(s.get("passed", 0) for s in done)
    line = f"{len(done)} of {n} videos colorized ({frames} frames" + (f", {passed} of them in colour, passed through" if passed else "") + ")"
    if midway is not None:
        got = midway["frames_out"]
        line += f", 1 stopped midway ({midway['output']}" + ("" if got is None else f", {got} of {midway['of']} frames" if midway["of"]
                                                              else f", {got} frames") + ")"
    if not_started:
        line += f", {len(not_started)} not started"
    if stopped_by != "end of input":
        line += f" (stopped by {'an error' if stopped_by == 'error' else stopped_by})"
    if len(skipped) > busy:
        line += f"; {len(skipped) - busy} done before, skipped"
    if busy:
        line += f"; {busy} skipped, another run writing {'it' if busy == 1 else 'them'}"
    line += f"; {wall:.1f} s"
    if written and wall > 0:
        line += f", {written / wall:.1f} fps overall" if written >= wall else f", {wall / written:.1f} s a frame overall"
    if failed:
        line += f"; {len(failed)} failed:"
    return line
