"""``nirvision demo``: colorize a generated NIR clip with the bundled weights; video + side-by-side PNG.

The README's first command. ``--model lite`` without ``--weights`` runs random weights (the
colours mean nothing; for checking an installation before the weights exist).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.base import Frame, Sink
from .colorize import add_model_options, build_backend, describe, encoder_threads, run_engine


class SnapshotSink(Sink):
    """Keeps the latest side-by-side frame, written as a PNG when closed."""

    side_by_side = True

    def __init__(self, path: Path):
        self.path = path
        self.description = str(path)
        self.image: np.ndarray | None = None

    def write(self, frame: Frame, image: np.ndarray) -> None:
        self.image = image

    def close(self) -> None:
        if self.image is not None:
            ok, data = cv2.imencode(".png", cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR))
            if ok:
                self.path.write_bytes(data.tobytes())


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="colorize a generated NIR clip with the bundled weights")
    p.add_argument("-o", "--output-dir", default="nirvision-demo", help="folder for demo.mp4 and demo_side_by_side.png (default: nirvision-demo)")
    p.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the clip (default: 320x240)")
    p.add_argument("--frames", type=int, default=50, help="frames in the clip (default: 50)")
    p.add_argument("--fps", type=int, default=25, help="frame rate of the clip (default: 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated clip")
    add_model_options(p)
    p.set_defaults(func=run, queue_size=None, stats_json=None)


def run(args) -> int:
    from ..io import open_sink, open_source

    from .bench import _size

    if args.frames < 1:
        raise InputError(f"--frames {args.frames}: expected at least 1")
    if args.fps < 1:
        raise InputError(f"--fps {args.fps}: expected a frame rate of at least 1")
    width, height = _size(args.size, "--size")
    backend, config, meta = build_backend(args)  # before any output is created: it fails fast on bad options
    out = Path(args.output_dir)
    video = out / "demo.mp4"
    png = out / "demo_side_by_side.png"
    source = None
    try:
        source = open_source(f"synthetic:{width}x{height}@{args.fps}:{args.frames}", seed=args.seed)
        sinks = [open_sink(str(video), source.info, threads=encoder_threads(args)), SnapshotSink(png)]
    except BaseException:
        if source is not None:
            source.close()
        backend.close()
        raise
    if not meta.get("weights"):
        print(f"nirvision demo: note: random {config.name} weights (no --weights): the colours mean nothing", file=sys.stderr)
    summary, code = run_engine(source, sinks, backend, args, progress=True)
    print(f"nirvision demo: {describe(summary)}", file=sys.stderr)
    print(f"{summary['fps']:.3g} fps ({config.name} model, {summary['backend']['name']} on {summary['backend']['device']}, {summary['backend']['precision']}); wrote {video} and {png}")
    return code
