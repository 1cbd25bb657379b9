"""``nirvision colorize SOURCE -o SINK``: NIR video, streams, cameras or images in, colour out.

Progress goes to stderr: a bar for files and folders, a status line for live sources; the
summary line at the end, and with ``--stats-json F`` the engine's summary as JSON.
Ctrl-C, SIGTERM or SIGHUP stops the run and finalizes the outputs without waiting out a stalled
camera's timeouts (a second Ctrl-C does not cut the finalizing short; a third leaves at once).
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from ..io.redact import printable
from ..io.specs import parse_positive, parse_time
from . import done_manifest

BAR = 24


def add_model_options(p) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--weights", help="checkpoint file (default: the bundled weights)")
    g.add_argument("--model", help="model size: lite, paper or a YAML file; without --weights, random weights (for tests and benchmarks)")
    g.add_argument("--backend", default="auto", help="inference backend: auto (default: the fastest usable one, it says which), eager, compile, onnxruntime, openvino or tensorrt")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16", "int8"), help="auto (default: fp16 on CUDA; bf16 on a CPU with native bf16 where OpenVINO runs it; else fp32), fp32, bf16, "
                   "fp16 (CUDA), int8 (ONNX Runtime or OpenVINO, after `python -m calibrate`)")
    g.add_argument("--threads", type=int, help="CPU threads for inference")
    g.add_argument("--workers", default="auto", metavar="N|auto",
                   help="frames colorized side by side, each worker with threads/N threads (ONNX Runtime or OpenVINO on the CPU). auto (default): 2 "
                   "where 2 or more CPU threads are at hand (measured on 2 cores: 1.0-1.7x the model's frames per second, less for the "
                   "whole run, as decoding and encoding share the cores; each frame takes longer); 1 for the lowest latency")
    g.add_argument("--levels", default="auto", metavar="auto|stretch|off",
                   help="NIR levels: auto (default) brings frames exposed unlike the training images (darker, brighter) to their "
                        "levels and leaves the others; stretch brings every frame to them (most robust to exposure, a little below "
                        "on frames like them); off")
    g.add_argument("--infer-scale", default="1", metavar="S",
                   help="run the model at S times each frame's width and height (0.05 to 1; default 1) and bring its colours back to "
                        "the frame's size with the frame's own fine detail: about S*S of the model's cost, for big frames on small "
                        "machines; at the training images' scale 0.5 cost 0.5-0.75 dB PSNR")
    g.add_argument("--flip-average", action="store_true",
                   help="colorize each frame also mirrored left to right and average the two: twice the inference, a little closer "
                        "to the truth (validation: +0.14 dB PSNR, 16.14 -> 16.28); for recorded videos where colour matters more than speed")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "colorize", help="colorize a NIR video, stream, camera or image folder",
        description="Colorize SOURCE into SINK(s). SOURCE: a video file, a folder or glob of images, rtsp://..., "
        "a camera (0 or /dev/video0) or synthetic:WIDTHxHEIGHT[@FPS][:FRAMES]. SINK: a video file "
        "(.mp4, .mkv, .mov: H.264, the source's timestamps and audio), a folder (PNG images) or http://HOST:PORT (watch in a "
        "browser: 127.0.0.1 for this machine, 0.0.0.0 for its networks). Several video files, or a "
        "folder or glob of videos, make a batch: each is written into the one output folder under its own name.",
    )
    p.add_argument("source", metavar="SOURCE", nargs="+",
                   help="one source; or several video files, or a folder or glob of videos: a batch into one output folder")
    p.add_argument("-o", "--output", action="append", required=True, metavar="SINK",
                   help="video file, folder, http://HOST:PORT (a live view for browsers) or null: (frames counted, not kept); "
                   "repeat for several (a batch of videos: one folder)")
    add_model_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--side-by-side", action="store_true", help="write NIR | RGB side by side")
    g.add_argument("--preview", action="store_true", help="show a preview window (where a display exists)")
    g.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default: 20)")
    g.add_argument("--preset", default="veryfast", help="x264 preset, ultrafast to veryslow (default: veryfast; where inference runs on a few CPU cores a faster "
                   "preset leaves more of them to it: more FPS, larger files)")
    g.add_argument("--no-audio", action="store_true", help="do not copy the source's audio")
    g.add_argument("--contact-sheet", action="store_true",
                   help="beside each video output, NAME_sheet.png: six frames spread over the video (live: one a minute, the "
                        "newest six), NIR beside its colours, with their times: to look through a batch without opening every video")
    g.add_argument("--segment", metavar="DURATION",
                   help="cut video outputs into files of DURATION (90, 90s, 15m, 1h): a live source's by the wall clock, named "
                   "after their start (cam_20261201-201500.mp4), a recorded video's by its own clock, numbered (cam_000.mp4)")
    g.add_argument("--keep", type=int, metavar="N",
                   help="with --segment on a live source: keep the newest N pieces of the output's name and delete older ones "
                   "(a recording around the clock that does not fill the disk)")
    g.add_argument("--encoder-threads", default="auto", metavar="N|auto",
                   help="x264 threads. auto (default): 1 when inference runs on the CPU (it keeps the cores busy; one encoder thread "
                   "then costs 18%% less CPU a frame), else x264's own choice")
    g = p.add_argument_group("input")
    g.add_argument("--reconnect", default="3", metavar="N|forever", help="live sources: connection attempts after a failure (default: 3)")
    g.add_argument("--open-timeout", type=float, default=10.0, metavar="S", help="RTSP: seconds to wait for a connection (default: 10)")
    g.add_argument("--read-timeout", type=float, default=5.0, metavar="S", help="RTSP: seconds without data before reconnecting (default: 5)")
    g.add_argument("--fps", type=float, help="frame rate given to image folders and globs (default: 25); refused for videos, which keep their own timestamps")
    g.add_argument("--input-bits", default="auto", metavar="auto|10|12|14|16",
                   help="16-bit images and video: the bits that hold the picture (Mono10 / Mono12 cameras store 10 or 12 bits "
                        "in 16-bit files); auto (default): the fewest that hold the largest value seen, said when below 16")
    g.add_argument("--color-frames", choices=("colorize", "pass"), default="colorize",
                   help="frames that are already in colour (a day/night camera by day): colorize (default) reduces them to NIR and "
                        "colorizes them as every frame; pass writes them as they came, without inference (the day keeps its "
                        "colours, the night is colorized; a camera whose night picture is tinted needs colorize)")
    g.add_argument("--max-frames", type=int, metavar="N", help="stop after reading N frames (a live source's frames dropped while inference fell behind count too)")
    g.add_argument("--start", metavar="TIME", help="video files: begin at TIME (90, 1:30, 0:01:30.5), as a player counts it; the output starts at 0")
    g.add_argument("--end", metavar="TIME", help="video files: stop before TIME")
    g.add_argument("--duration", metavar="TIME", help="video files: colorize TIME from --start (instead of --end)")
    g.add_argument("--live", action="store_true", help="pace a synthetic source in real time and treat it as live")
    g.add_argument("--skip-done", action="store_true",
                   help="a batch of videos (or one video) run again: leave out the videos whose output a run finished from them, "
                   "as the output folder's .nirvision-done.json records, or that holds all their frames (an interrupted batch goes "
                   "on where it stopped; a short, unreadable or other source's output is redone)")
    g = p.add_argument_group("engine")
    g.add_argument("--queue-size", type=int, metavar="N", help="frames per engine queue (default: 4 for files, 2 for live sources: less latency)")
    g.add_argument("--stats-json", metavar="F", help="write the run's summary as JSON to F (- for stdout)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar or status line")
    g.add_argument("--status-interval", type=float, metavar="S", help="seconds between progress updates (default: 0.5 on a terminal, else 10; 5 for live sources)")
    p.set_defaults(func=run)


def encoder_threads(args) -> int | None:
    """``--encoder-threads``: a number, or for auto 1 when inference runs on the CPU, else None (x264 decides)."""
    from ..runtime.backends import resolve_device

    value = getattr(args, "encoder_threads", "auto")
    if value != "auto":
        return parse_positive(value, "--encoder-threads")
    return 1 if resolve_device(args.device).type == "cpu" else None


def infer_scale(args) -> float:
    """``--infer-scale`` as a number, or a usage error naming it."""
    from ..runtime.backends.scaled import check_scale

    try:
        return check_scale(getattr(args, "infer_scale", 1.0))
    except ValueError as exc:
        raise InputError(f"--infer-scale: {exc}") from None


def check_levels(levels: str) -> str:
    """``--levels`` checked, or a usage error naming it."""
    from ..runtime.backends.levels import check_levels as check

    try:
        return check(levels)
    except ValueError as exc:
        raise InputError(f"--{exc}") from None


def build_backend(args, announce: bool = True):
    """The backend the model options ask for (errors are usage errors with the reason);
    ``announce``: say which backend ``auto`` chose now (else call ``announce_backend``)."""
    from ..api import load_chain, set_threads
    from ..runtime.backends import create_backend

    from ..runtime.levels import band_of

    levels = check_levels(getattr(args, "levels", "off"))  # options first, then the weights
    set_threads(args.threads)
    chain, config, meta = load_chain(args.weights, args.model)
    workers = args.workers if args.workers == "auto" else parse_positive(args.workers, "--workers")
    backend = create_backend(args.backend, chain, args.device, args.precision, workers=workers, infer_scale=infer_scale(args),
                             levels=levels, levels_band=band_of(meta) if levels != "off" else None,
                             flip_average=bool(getattr(args, "flip_average", False)))
    note_random_weights(args, config, meta)
    if announce:
        announce_backend(args, backend)
    return backend, config, meta


def note_random_weights(args, config, meta: dict) -> None:
    """``--model`` without ``--weights`` builds an untrained network (for checks and speed): said
    with the backend (``announce_backend``, once the inputs are found good), since it colorizes in
    noise and the bundled weights are lite too."""
    if meta.get("weights") is None:
        args.random_weights_note = (f"weights: a random init of {config.name} (--model without --weights; its colours are noise, "
                                    "for checks and speed); leave out --model for the bundled weights")


def announce_backend(args, backend) -> None:
    note = getattr(args, "random_weights_note", None)
    if note:
        print(f"nirvision {args.command}: {note}", file=sys.stderr)
    why = getattr(backend, "chosen_because", None)
    if why:  # --backend auto: say which backend it took and why
        print(f"nirvision {args.command}: backend auto chose {backend.name} ({backend.precision} on {backend.device}): {why}", file=sys.stderr)
    if getattr(backend, "infer_scale", 1.0) != 1.0:
        print(f"nirvision {args.command}: the model runs at {backend.infer_scale:g} of each frame's width and height (at least 8 pixels a side)",
              file=sys.stderr)
    if getattr(backend, "flip_average", False):
        print(f"nirvision {args.command}: each frame also colorized mirrored and the two averaged (twice the inference)", file=sys.stderr)
    if getattr(backend, "workers", 1) > 1:
        print(f"nirvision {args.command}: {backend.workers} workers of {backend.threads // backend.workers} thread(s), frames side by side "
              f"(--workers 1 for the lowest latency)", file=sys.stderr)


class Progress:
    """Renders engine status to stderr: a bar for finite inputs, a status line for live ones."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.shown = False

    def __call__(self, st: dict) -> None:
        if st["live"] or not st["frames_total"]:
            # a live source down says so (the engine gives 0 fps then), not a rate slowly falling
            down = f" ({st['state']}, {st['outage_s']:.0f} s without frames)" if st.get("waiting") else ""
            line = (f"{st['frames_out']} frames  {st['fps']:.1f} fps{down}  dropped {st['dropped']}  "
                    f"reconnects {st['reconnects']}  decode errors {st['decode_errors']}  {st['elapsed_s']:.0f} s")
        else:
            total = st["frames_total"]
            frac = min(1.0, st["frames_out"] / total)
            fill = int(frac * BAR)
            eta = (total - st["frames_out"]) / st["fps"] if st["fps"] > 0 else 0
            line = f"[{'#' * fill}{'.' * (BAR - fill)}] {st['frames_out']}/{total} {100 * frac:5.1f}%  {st['fps']:.1f} fps  eta {eta:.0f} s"
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def catch_signals(on_signal=None):
    """SIGINT, SIGTERM and SIGHUP (the terminal or ssh session closed) are noted in the yielded
    list (and ``on_signal(name)`` is called); a second SIGINT raises KeyboardInterrupt. A SIGHUP
    that is ignored (``nohup``) stays ignored. The previous handlers come back at the end."""
    seen: list[int] = []

    def handler(signum, _frame):
        if seen and signum == signal.SIGINT:
            raise KeyboardInterrupt
        seen.append(signum)
        if on_signal is not None:
            on_signal(signal.Signals(signum).name)

    caught = [signal.SIGINT, signal.SIGTERM]
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        caught.append(hangup)
    old = {s: signal.signal(s, handler) for s in caught}
    try:
        yield seen
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def stop_on_signals(engine):
    """SIGINT, SIGTERM and SIGHUP ask ``engine`` to stop and finalize; a second SIGINT aborts."""
    return catch_signals(engine.request_stop)


def write_stats(path: str, summary: dict) -> None:
    text = json.dumps(summary, indent=2)
    if path == "-":
        print(text)
        return
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--stats-json {path}: cannot be written ({exc.strerror or exc})") from None


def error_text(exc: BaseException) -> str:
    """An error as the CLI says it: a usage error's own message, anything else with its type."""
    from ..errors import usage_errors

    return str(exc) if isinstance(exc, usage_errors()) else f"{type(exc).__name__}: {exc}"


def check_stats_path(args, sources=(), outputs=()) -> None:
    """``--stats-json``: a file that can be written (said before the run, not after it), and not
    one of the run's sources or outputs, which it would replace. Once checked, a failure is
    recorded there (``record_failure``)."""
    from ..io.specs import check_writable_file, same_file

    args.stats_checked = False
    path = getattr(args, "stats_json", None)
    if not path or path == "-":
        args.stats_checked = True
        return
    check_writable_file(path, "--stats-json")
    for kind, names in (("the source", sources), ("an output", outputs)):
        for name in names:
            if "://" not in str(name) and same_file(path, name):
                raise InputError(f"--stats-json {path}: is {kind} ({name}), which it would replace; expected another file")
    args.stats_checked = True


def record_failure(args, exc: BaseException, summary: dict | None = None) -> None:
    """``--stats-json`` of a run that failed: what it did (``summary``, if the engine ran) and
    the error, so that a file left by an earlier run is not taken for this one's result."""
    from ..io.redact import redact_text, url_secrets

    if not getattr(args, "stats_json", None) or not getattr(args, "stats_checked", False):
        return  # no file, or one that may not be written (it is the error, or a source)
    sources = args.source if isinstance(args.source, list) else [args.source]
    secrets = tuple(x for src in sources for x in url_secrets(str(src)))
    record = dict(summary) if summary else {"source": ", ".join(redact_text(str(src), secrets) for src in sources), "frames_out": 0}
    if isinstance(exc, Exception):
        record["stopped_by"], record["error"] = "error", redact_text(error_text(exc), secrets)
    else:  # Ctrl-C, or a signal's exit, before the engine ran: named as the engine names a signal
        code = exc.code if isinstance(exc, SystemExit) else 128 + signal.SIGINT
        named = isinstance(code, int) and 128 < code < 128 + signal.NSIG
        record["stopped_by"] = signal.Signals(code - 128).name if named else f"exit status {code}"
    try:
        write_stats(args.stats_json, record)
    except InputError:  # the run's own error is the one to report (a bad path was checked first)
        pass


def run_engine(source, sinks, backend, args, progress: bool = True, close_backend: bool = True, stats: bool = True) -> tuple[dict, int]:
    """Run the engine with signal handling and progress; (summary, exit code). The backend is
    closed at the end unless ``close_backend`` is False (a batch reuses it); ``stats``: write
    ``--stats-json``."""
    from ..runtime.engine import Engine, EngineOptions

    bar = Progress() if progress else None
    interval = getattr(args, "status_interval", None) or (0.5 if (bar and bar.tty) else (5.0 if source.live else 10.0))
    queue = getattr(args, "queue_size", None) or (2 if source.live else 4)
    opts = EngineOptions(queue_size=queue, status_interval=interval, progress=bar)
    engine = Engine(source, sinks, backend, opts)
    summary = None
    try:
        with stop_on_signals(engine) as seen:
            try:
                summary = engine.run()
            except BaseException as exc:
                if bar:
                    bar.done()
                if stats:
                    record_failure(args, exc, engine.summary())
                raise
            if bar:
                bar.done()
            if stats and args.stats_json:
                write_stats(args.stats_json, summary)
    finally:
        if close_backend:
            backend.close()
    code = 0
    if seen:
        code = 128 + int(seen[0])
    return summary, code


def describe(summary: dict) -> str:
    s = summary
    parts = [f"{s['frames_out']} frames in {s['wall_s']:.1f} s ({s['fps']:.1f} fps)" if s["fps"] >= 1 or not s["frames_out"] or s["wall_s"] <= 0
             else f"{s['frames_out']} frames in {s['wall_s']:.1f} s ({s['wall_s'] / s['frames_out']:.1f} s a frame)"]
    for key, label in (("passed", "in colour, passed through"), ("dropped", "dropped"), ("discarded", "left unwritten at the stop"), ("decode_errors", "undecodable and skipped"), ("reconnects", "reconnects"), ("stale", "late in a connection's opening burst, left out"), ("resolution_changes", "size changes")):
        if s.get(key):
            parts.append(f"{s[key]} {label}")
    if s.get("damage"):
        n = len(s["damage"])
        spans = ", ".join(f"{d['from']:.2f}-{d['to']:.2f} s" for d in s["damage"][:3]) + (", ..." if n > 3 else "")
        parts.append(f"{n} damaged stretch{'es' if n > 1 else ''} read through ({spans})")
    if s.get("shortfall"):
        short = s["shortfall"]
        parts.append(f"ended at {short['seconds']:.2f} s of the {short['expected_seconds']:.2f} s its header announces (truncated or damaged?)")
    if s["stopped_by"] != "end of input":
        parts.append(f"stopped by {s['stopped_by']}")
    pieces = f" ({len(s['pieces'])} file{'s' if len(s['pieces']) != 1 else ''})" if s.get("pieces") else ""
    return ", ".join(parts) + " -> " + ", ".join(s["sinks"]) + pieces


def contact_sheets(args, outputs, info) -> list:
    """``--contact-sheet``: a sheet sink beside each video file among ``outputs``."""
    if not getattr(args, "contact_sheet", False):
        return []
    from ..io.sheet_sink import sheets_for

    return sheets_for(outputs, info)


def say_where_to_watch(sinks) -> None:
    for sink in sinks:
        if getattr(sink, "where", None):
            print(f"nirvision colorize: watch at {sink.where}", file=sys.stderr, flush=True)


def time_range(args) -> tuple[float | None, float | None]:
    """--start / --end / --duration as (start, end) seconds, checked; (None, None) without them."""
    start = parse_time(args.start, "--start") if getattr(args, "start", None) is not None else None
    end = parse_time(args.end, "--end") if getattr(args, "end", None) is not None else None
    if getattr(args, "duration", None) is not None:
        if end is not None:
            raise InputError("--end and --duration: expected one of them")
        length = parse_time(args.duration, "--duration")
        if length <= 0:
            raise InputError(f"--duration {args.duration}: expected a positive time")
        end = (start or 0.0) + length
    if end is not None and end <= (start or 0.0):
        raise InputError(f"--end {args.end}: expected a time after --start ({start or 0:g} s)")
    return start, end


def check_args(args) -> None:
    """Option values that would only fail later, as usage errors now."""
    args.start_s, args.end_s = time_range(args)
    from ..runtime.frames import check_input_bits

    args.input_bits = check_input_bits(getattr(args, "input_bits", None), "--input-bits")
    if args.queue_size is not None and args.queue_size < 1:
        raise InputError(f"--queue-size {args.queue_size}: expected at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames {args.max_frames}: expected at least 1")
    if not 0 <= args.crf <= 51:
        raise InputError(f"--crf {args.crf}: expected 0 (lossless) to 51")
    from ..io.video_sink import check_preset  # PyAV and OpenCV: imported when a command runs, not for --help

    check_preset(args.preset)
    args.segment_s = None
    if getattr(args, "segment", None) is not None:
        from ..io.segment_sink import parse_duration

        args.segment_s = parse_duration(args.segment)
        if args.skip_done:
            raise InputError("--skip-done with --segment: a video cut into pieces cannot be checked for completeness; expected one of them")
    if getattr(args, "keep", None) is not None and args.segment_s is None:
        raise InputError(f"--keep {args.keep}: keeps the newest pieces of a recording cut by --segment; expected --segment too")
    for name in ("open_timeout", "read_timeout"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive number of seconds")


def _check_segment_outputs(args) -> None:
    """--segment cuts video files: one source's outputs must hold one (a batch's all are)."""
    from ..io.redact import redact_url
    from ..io.specs import is_video_file

    if args.segment_s is not None and not any(map(is_video_file, args.output)):
        raise InputError(f"--segment {args.segment}: cuts video file outputs; expected one (-o NAME.mp4, .mkv or .mov) among: {', '.join(map(redact_url, args.output))}")


def _check_range_source(args) -> None:
    """--start / --end / --duration take a time range of a recording: one source must be a video file."""
    from ..io.specs import check_range_source

    if args.start_s is not None or args.end_s is not None:
        check_range_source(args.source, "--start / --end / --duration")


def _done_before(args) -> bool:
    """``--skip-done`` with one video: True (and says so) when its one output is already complete."""
    from ..io.image_source import IMAGE_SUFFIXES
    from ..io.redact import redact_url
    from ..io.video_sink import VIDEO_SUFFIXES
    from .batch import already_done

    src = Path(args.source)
    from ..io.specs import source_kind

    if source_kind(args.source) == "file" and not src.exists():
        raise InputError(f"source {args.source}: not found; expected a video file, or a folder or glob of videos (--skip-done checks their outputs)")
    if not src.is_file() or src.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"--skip-done: source {redact_url(args.source)} is not a video file; expected recorded videos, whose outputs can be checked")
    if len(args.output) != 1 or Path(args.output[0]).suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"--skip-done: output {', '.join(map(redact_url, args.output))}: expected one video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
    done, found = already_done(src, Path(args.output[0]), args.max_frames, args.start_s, args.end_s)
    if done:
        print(printable(f"nirvision colorize: {src}: done before ({found}), skipped"), file=sys.stderr)
        if args.stats_json:
            write_stats(args.stats_json, {"skipped": [{"source": str(src), "output": args.output[0], "reason": found}]})
    elif Path(args.output[0]).exists():
        print(printable(f"nirvision colorize: {src}: colorizing again ({found})"), file=sys.stderr)
    return done


def run(args) -> int:
    handed_over = []  # set once the engine or the batch runs: they write --stats-json themselves
    previous = _exit_on_signals()  # while the model loads: a stop ends the run, recorded as stopped
    try:
        return _run(args, handed_over)
    except BaseException as exc:
        if not handed_over:
            record_failure(args, exc)
            if isinstance(exc, SystemExit) and isinstance(exc.code, int) and 128 < exc.code < 128 + signal.NSIG and not getattr(exc, "said", False):
                print(f"nirvision colorize: stopped by {signal.Signals(exc.code - 128).name} while starting", file=sys.stderr)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _exit_on_signals() -> dict:
    """SIGTERM and SIGHUP (unless ignored, as under nohup) end the process as a SystemExit of
    128 + the signal until the engine's own handling takes over (``catch_signals``), so that a
    stop while the model loads is recorded in ``--stats-json`` as stopped, not left unsaid;
    the previous handlers, to restore."""
    def leave(signum, _frame):
        raise SystemExit(128 + signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) is signal.SIG_IGN:
            continue
        try:
            previous[signum] = signal.signal(signum, leave)
        except ValueError:  # not the main thread (the API's callers): their handlers stay
            break
    return previous


def _run(args, handed_over: list) -> int:
    from ..io import open_sink, open_source
    from ..io.specs import check_distinct_outputs, check_not_source, check_output_kinds, opening_order

    check_stats_path(args, args.source, args.output)  # first: the failures below are recorded there
    check_args(args)
    check_distinct_outputs(args.output)  # -o x.mp4 -o x.mp4: one file, two encoders
    check_output_kinds(args.output)  # -o rtsp://user:password@...: refused, not made a folder of that name
    # the model and backend first: a wrong checkpoint or a precision this machine cannot run is
    # found in a moment, before a camera is opened or an output file created (backends export,
    # compile or build engines on the first frame, not here)
    from .batch import batch_inputs, run_batch

    inputs = batch_inputs(args.source)
    if inputs is None and len(args.source) == 1:
        args.source = args.source[0]
        _check_segment_outputs(args)
        _check_range_source(args)
        from ..api import check_fps

        check_fps(args.fps, args.source)  # image folders and globs (and a camera); a video keeps its own timestamps
        if args.skip_done and _done_before(args):
            return 0
    backend, _, _ = build_backend(args, announce=False)
    if inputs is not None:
        handed_over.append("batch")
        return run_batch(args, inputs, backend)
    options = {"max_frames": args.max_frames, "input_bits": args.input_bits, "color_frames": args.color_frames}
    if args.fps is not None:
        options["fps"] = args.fps
    if args.no_audio:
        options["audio"] = False
    if args.start_s is not None or args.end_s is not None:
        options.update(start=args.start_s, end=args.end_s)
    sinks, source = [], None
    recorded = _recorded_output(args)  # a recorded video into one video file: --skip-done's record of it
    try:
        early = _early_views(args)  # a live source's browser view answers while the camera is reached
        sinks.extend(early)
        opening = threading.Event()  # Ctrl-C / SIGTERM while a camera is being reached (PyAV swallows the first)
        with catch_signals(lambda _name: opening.set()) as seen:
            try:
                source = open_source(args.source, reconnect=args.reconnect, open_timeout=args.open_timeout, read_timeout=args.read_timeout,
                                     live=args.live or None, stop=opening, **options)
            except KeyboardInterrupt:
                if seen and seen[0] != signal.SIGINT:
                    print(f"nirvision colorize: stopped by {signal.Signals(seen[0]).name} while connecting", file=sys.stderr)
                    stopped = SystemExit(128 + int(seen[0]))
                    stopped.said = True  # run() says nothing more of it
                    raise stopped from None
                raise
        check_not_source(args.output, args.source)
        sheets = contact_sheets(args, args.output, source.info)  # refused before an output is opened where one is a source image
        if recorded is not None:
            recorded["before"] = done_manifest.source_state(recorded["source"])
        from ..runtime.engine import prepare_backend

        prepare_backend(backend, source.info)
        for view in early:
            view.attach(source.info.description, source.info.sample_aspect_ratio)
        for spec in opening_order([o for o in args.output if o not in {v.spec for v in early}]):
            sinks.append(open_sink(spec, source.info, side_by_side=args.side_by_side, crf=args.crf, preset=args.preset, audio=not args.no_audio,
                                   threads=encoder_threads(args), segment=args.segment_s, keep=args.keep))
        if recorded is not None:  # opened (and claimed) now: until this run ends normally, no entry vouches for it
            done_manifest.forget(recorded["output"])
        if args.preview:
            sinks.append(open_sink("preview:", source.info, side_by_side=True))
        sinks.extend(sheets)
        say_where_to_watch([s for s in sinks if s not in early])
    except BaseException:
        for sink in sinks:
            sink.close()
        if source is not None:
            source.close()
        backend.close()
        raise
    announce_backend(args, backend)
    handed_over.append("engine")
    summary, code = run_engine(source, sinks, backend, args, progress=not args.no_progress)
    if recorded is not None and code == 0 and source.info.kind == "file":
        done_manifest.record(recorded["output"], recorded["source"], summary, args.start_s, args.end_s, args.max_frames, recorded["before"])
    print(printable(f"nirvision colorize: {describe(summary)}"), file=sys.stderr)
    return code


def _early_views(args) -> list:
    """``-o http://...`` of a live source (RTSP, a camera), opened before the source: a camera
    that is down when the run starts (a machine that boots before its cameras) keeps the view and
    ``/health`` answering (503, "connecting to ...") instead of refusing connections."""
    from ..io.http_sink import HttpViewSink
    from ..io.redact import redact_url
    from ..io.specs import source_kind

    if source_kind(str(args.source)) not in ("rtsp", "camera"):
        return []
    name = redact_url(str(args.source))
    views = []
    try:
        for spec in args.output:
            if str(spec).lower().startswith(("http:", "https:")):
                view = HttpViewSink(spec, side_by_side=args.side_by_side, title=name)
                view.spec, view.waiting = spec, f"connecting to {name}"
                views.append(view)
    except BaseException:
        for view in views:
            view.close()
        raise
    say_where_to_watch(views)
    return views


def _recorded_output(args) -> dict | None:
    """For a video file colorized into one video file (no pieces): the paths its record in the
    output folder's ``.nirvision-done.json`` needs, else None."""
    from ..io.image_source import IMAGE_SUFFIXES
    from ..io.video_sink import VIDEO_SUFFIXES

    src = Path(str(args.source))
    if "://" in str(args.source) or not src.is_file() or src.suffix.lower() in IMAGE_SUFFIXES or args.segment_s:
        return None
    outputs = [o for o in args.output if "://" not in str(o)]
    if len(outputs) != 1 or len(args.output) != 1 or Path(outputs[0]).suffix.lower() not in VIDEO_SUFFIXES:
        return None
    return {"source": src, "output": Path(outputs[0]), "before": None}
