"""``--levels`` on streams run at once through one backend: each run keeps its own levels."""
import threading

import numpy as np

from nirvision.runtime.backends.levels import LevelsInference
from nirvision.runtime.engine import Engine
from nirvision.runtime.levels import LevelsBand, LevelsTracker
from tests.helpers import nir_frames
from tests.io.media import ListSource, RecordingSink, StubBackend

BAND = LevelsBand(low=(50.0, 80.0), high=(200.0, 240.0), low_mean=65.0, high_mean=220.0, images=10)


def two_cameras(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A dark camera and a bright one, frames of one size (a new size would restart the levels)."""
    dark = (nir_frames(n, 48, 64, seed=1) * 0.3).astype(np.uint8)
    bright = np.clip(nir_frames(n, 48, 64, seed=2).astype(int) + 40, 0, 255).astype(np.uint8)
    return dark, bright


class LockStep(StubBackend):
    """The stub, where each frame waits for the other run's at a barrier: two runs then take
    turns, frame by frame, whatever the threads' timing."""

    def __init__(self, barrier: threading.Barrier | None = None):
        super().__init__()
        self.barrier = barrier

    def infer_uint8(self, frames):
        if self.barrier is not None:
            self.barrier.wait(timeout=120)
        return super().infer_uint8(frames)


def test_two_streams_interleaved_frame_by_frame_level_as_each_alone():
    dark, bright = two_cameras()
    backend = LevelsInference(StubBackend(), "stretch", BAND)
    a, b = backend.start_stream(), backend.start_stream()
    together = {"a": [], "b": []}
    for fa, fb in zip(dark, bright):  # a, b, a, b, ... through the one backend
        together["a"].append(a.submit(fa[None]).result()[0])
        together["b"].append(b.submit(fb[None]).result()[0])
    for name, frames in (("a", dark), ("b", bright)):
        alone = backend.start_stream()
        for i, f in enumerate(frames):
            assert np.array_equal(alone.submit(f[None]).result()[0], together[name][i]), (name, i)
    # and what each got is its own stream's levels, smoothed from frame to frame
    track = LevelsTracker(BAND, "stretch")
    assert all(np.array_equal(out[..., 0], track(f)) for out, f in zip(together["a"], dark))
    assert a.name == "stub" and a.levels == "stretch"  # the rest is the backend's


def test_two_engine_runs_at_once_through_one_backend_level_as_each_alone():
    dark, bright = two_cameras()
    inner = LockStep()
    backend = LevelsInference(inner, "stretch", BAND)

    def run(frames):
        sink = RecordingSink()
        summary = Engine(ListSource(frames), [sink], backend).run()
        assert summary["frames_out"] == len(frames)
        return [image for _, image, _ in sink.written]

    alone = [run(dark), run(bright)]
    inner.barrier = threading.Barrier(2)  # from now on the two runs take turns, frame by frame
    results: dict = {}
    threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, run(f))) for k, f in enumerate((dark, bright))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results) == [0, 1], "a run failed (see the thread's exception above)"
    for k in (0, 1):
        assert all(np.array_equal(x, y) for x, y in zip(alone[k], results[k])) and len(results[k]) == len(alone[k])


def test_the_backends_own_submit_still_follows_a_stream():
    """Callers that submit to the backend itself (a wrapper around it) keep the smoothing."""
    dark, _ = two_cameras(4)
    backend = LevelsInference(StubBackend(), "stretch", BAND)
    backend.start_stream()
    track = LevelsTracker(BAND, "stretch")
    for f in dark:
        assert np.array_equal(backend.submit(f[None]).result()[0][..., 0], track(f))
