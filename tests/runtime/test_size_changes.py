"""A source whose frames change size: news for a video or a stream (WARNING), the normal case for a
folder of pictures (INFO each), where a backend that builds a model per size says once what that
costs and how to avoid it."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from nirvision.runtime.backends.auto import sizes_vary_hint
from nirvision.runtime.cache import CacheUse
from nirvision.runtime.engine import Engine
from tests.io.media import ListSource, StubBackend

SIZES = [(24, 32), (40, 16), (24, 32), (8, 48)]  # (H, W): three changes


class PerSizeStub(StubBackend):
    """A stand-in for ONNX Runtime: it would export a model for each size (4.2 s for the first)."""

    name = "onnxruntime"

    def __init__(self):
        super().__init__()
        self.cache = SimpleNamespace(history=[CacheUse(Path("m.onnx"), built=True, seconds=4.2), CacheUse(Path("n.onnx"), built=False)])


def folder(images):
    source = ListSource(images)
    source.info = dataclasses.replace(source.info, kind="images", description="photos/")
    return source


def run(source, backend, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nirvision.runtime.engine"):
        summary = Engine(source, [], backend).run()
    records = [r for r in caplog.records if r.name == "nirvision.runtime.engine"]
    return summary, [r for r in records if r.levelno == logging.WARNING], [r for r in records if r.levelno == logging.INFO]


def frames():
    return [np.zeros(s, np.uint8) for s in SIZES]


def test_a_video_changing_size_warns_each_time(caplog):
    summary, warnings, _ = run(ListSource(frames()), StubBackend(), caplog)
    assert summary["resolution_changes"] == 3 and summary["frames_out"] == 4
    assert [r.getMessage() for r in warnings] == [
        "engine: the source changed size from 32x24 to 16x40 at frame 1",
        "engine: the source changed size from 16x40 to 32x24 at frame 2",
        "engine: the source changed size from 32x24 to 48x8 at frame 3"]


def test_pictures_of_many_sizes_are_info_and_eager_needs_no_hint(caplog):
    summary, warnings, infos = run(folder(frames()), StubBackend(), caplog)
    assert summary["resolution_changes"] == 3 and summary["frames_out"] == 4  # still counted
    assert warnings == []
    changes = [r.getMessage() for r in infos if "the picture before" in r.getMessage()]
    assert changes == ["engine: frame 1 is 16x40, the picture before 32x24", "engine: frame 2 is 32x24, the picture before 16x40",
                       "engine: frame 3 is 48x8, the picture before 32x24"]


def test_pictures_of_many_sizes_with_a_per_size_backend_say_the_cost_once(caplog):
    backend = PerSizeStub()
    summary, warnings, infos = run(folder(frames()), backend, caplog)
    assert summary["resolution_changes"] == 3
    (warning,) = warnings  # once, at the first picture of another size
    text = warning.getMessage()
    assert text.startswith("engine: the pictures differ in size (32x24, then 16x40 at frame 1): onnxruntime exports an ONNX model "
                           "for each new size (4.2 s here;")
    assert "--backend eager" in text
    assert sum("the picture before" in r.getMessage() for r in infos) == 3
    # a folder of pictures of one size: nothing said
    _, warnings, _ = run(folder([np.zeros((24, 32), np.uint8)] * 3), PerSizeStub(), caplog)
    assert warnings == []


def test_the_hint_names_auto_and_sees_through_wrappers():
    from nirvision.runtime.backends.base import BackendWrapper

    class Wrapper(BackendWrapper):  # as levels or scaled inference wrap the backend auto chose
        def infer(self, x):
            return self.inner.infer(x)

    stub = PerSizeStub()
    stub.cache.history = []  # nothing built in this run (all found in the cache): no time to quote
    wrapped = Wrapper(stub)
    wrapped.chosen_because = "first usable in the measured order"
    hint = sizes_vary_hint(wrapped)
    assert hint.startswith("--backend auto chose onnxruntime, which exports an ONNX model for each new size (seconds each;")
    assert sizes_vary_hint(StubBackend()) is None  # runs any size at once
    eager = StubBackend()
    eager.name = "eager"
    assert sizes_vary_hint(eager) is None
