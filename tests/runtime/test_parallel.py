"""Frames side by side: FrameParallel keeps order and outputs, the engine and bench use it."""
import threading
import time

import numpy as np
import pytest
import torch

from nirvision.io import open_sink, open_source
from nirvision.io.base import Sink
from nirvision.runtime.backends import BackendUnavailable, create_backend
from nirvision.runtime.backends.parallel import FrameParallel, resolve_workers
from nirvision.runtime.engine import Engine
from tests.helpers import nir_frames, tiny_chain
from tests.io.media import ListSource, StubBackend, read_video, run_in_thread, wait_for

pytest.importorskip("onnxruntime")


class CopyableStub(StubBackend):
    """A stub whose copies take a different, shuffled time per frame, so that later frames
    often finish before earlier ones; records which copy ran which frame."""

    can_replicate = True

    def __init__(self, delays=(0.03, 0.001, 0.015), log=None):
        super().__init__()
        self.delays = delays
        self.log = log if log is not None else []
        self.threads_given = None

    def replica(self, threads):
        twin = CopyableStub(self.delays, self.log)
        twin.threads_given = threads
        return twin

    def infer_uint8(self, frames):
        i = int(frames[0, 0, 0])
        self.log.append((i, threading.get_ident()))
        time.sleep(self.delays[i % len(self.delays)])
        return super().infer_uint8(frames)


def indexed(n, h=16, w=20):
    return [np.full((h, w), i, np.uint8) for i in range(n)]


def test_results_come_back_in_submission_order_while_frames_finish_out_of_order():
    par = FrameParallel(CopyableStub(), 3, threads=3)
    try:
        assert par.max_in_flight == 3 and [r.threads_given for r in par.replicas] == [1, 1, 1]
        pending = [par.submit(f[None]) for f in indexed(9)]
        outs = [p.result() for p in pending]
        assert [int(o[0, 0, 0, 0]) for o in outs] == list(range(9))
        assert all(p.seconds > 0 for p in pending)
        assert len({tid for _, tid in par.replicas[0].log}) == 3  # three worker threads ran frames
        batch = par.infer_uint8(np.stack(indexed(5)))
        assert batch.shape == (5, 16, 20, 3) and list(batch[:, 0, 0, 0]) == list(range(5))
    finally:
        par.close()


def test_engine_keeps_frame_order_and_timestamps_with_frames_in_flight(tmp_path):
    frames = indexed(24, 32, 48)
    source = ListSource(frames, live=False)
    par = FrameParallel(CopyableStub(), 3, threads=3)
    sink = open_sink(str(tmp_path / "png"), source.info)
    try:
        summary = Engine(source, [sink], par).run()
    finally:
        par.close()
    assert summary["frames_out"] == 24 and summary["dropped"] == 0
    import cv2

    written = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in written] == [f"frame_{i:06d}.png" for i in range(24)]
    for i, p in enumerate(written):  # frame i's output is the stub's RGB of value i
        assert tuple(cv2.imread(str(p))[0, 0]) == (i // 2, 255 - i, i)  # BGR on disk


def test_engine_video_from_parallel_onnxruntime_matches_single_session(tmp_path, monkeypatch):
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    net = tiny_chain()
    single = create_backend("onnxruntime", net, "cpu", "fp32", threads=1)
    par = create_backend("onnxruntime", net, "cpu", "fp32", threads=2, workers=2)
    try:
        assert isinstance(par, FrameParallel) and par.workers == 2 and all(r.threads == 1 for r in par.replicas)
        frames = nir_frames(6, 48, 64)
        want = single.infer_uint8(frames)
        got = par.infer_uint8(frames)
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # the same graph; thread counts may round apart
        source = open_source("synthetic:64x48@25:12")
        summary = Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info, threads=1)], par).run()
    finally:
        single.close()
        par.close()
    assert summary["frames_out"] == 12
    video = read_video(tmp_path / "out.mp4")
    assert len(video["times"]) == 12 and video["times"] == sorted(video["times"])


def test_worker_errors_reach_the_run_and_the_file_is_finalized(tmp_path):
    class Broken(CopyableStub):
        def replica(self, threads):
            return Broken(self.delays, self.log)

        def infer_uint8(self, frames):
            if int(frames[0, 0, 0]) == 5:
                raise RuntimeError("worker lost")
            return super().infer_uint8(frames)

    source = ListSource(indexed(20, 32, 48), live=False)
    par = FrameParallel(Broken(delays=(0.005,)), 2, threads=2)
    try:
        with pytest.raises(RuntimeError, match="worker lost"):
            Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info)], par).run()
    finally:
        par.close()
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 5  # frames 0-4, in order, playable


def test_workers_resolution_and_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    net = tiny_chain()
    ort1 = create_backend("onnxruntime", net, "cpu", "fp32", threads=1, workers="auto")
    ort2 = create_backend("onnxruntime", net, "cpu", "fp32", threads=2, workers="auto")
    try:
        assert not isinstance(ort1, FrameParallel)  # one thread: nothing to split
        assert isinstance(ort2, FrameParallel) and ort2.workers == 2
    finally:
        ort1.close()
        ort2.close()
    eager = create_backend("eager", net, "cpu", "fp32", workers="auto")
    assert not isinstance(eager, FrameParallel)  # torch's thread pool is shared: auto leaves eager alone
    with pytest.raises(BackendUnavailable, match="side by side"):
        create_backend("eager", net, "cpu", "fp32", workers=2)
    for bad in (0, -1, "two"):
        with pytest.raises(ValueError, match="workers"):
            resolve_workers(bad, eager)


def test_cli_workers_option(tmp_path, monkeypatch, capsys):
    from nirvision.cli import main

    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    (tmp_path / "m.yaml").write_text(__import__("tests.io.media", fromlist=["TINY_MODEL"]).TINY_MODEL)
    args = ["colorize", "synthetic:64x48@25:6", "-o", str(tmp_path / "out.mp4"), "--model", str(tmp_path / "m.yaml"), "--no-progress"]
    assert main(args + ["--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(args + ["--backend", "eager", "--workers", "2"]) == 2
    assert "side by side" in capsys.readouterr().err
    assert main(args + ["--backend", "onnxruntime", "--threads", "2", "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "2 workers of 1 thread(s)" in err
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 6
    torch.set_num_threads(1)  # --threads 2 changed the process-wide setting


def test_stop_with_frames_in_flight_finalizes_a_playable_file(tmp_path):
    source = ListSource(indexed(250, 32, 48), live=False)
    par = FrameParallel(CopyableStub(delays=(0.01, 0.02)), 2, threads=2)
    engine = Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info)], par)
    thread, box = run_in_thread(engine.run)
    try:  # a stop once frames are going (not after a fixed time: a loaded machine may not have written any by then)
        wait_for(lambda: engine.stats.frames_out >= 10, 60, "ten frames written")
    finally:
        engine.request_stop("test")
        thread.join(60)
        par.close()
    assert not thread.is_alive()
    summary = box["result"]
    assert summary["stopped_by"] == "test" and 0 < summary["frames_out"] < 250
    video = read_video(tmp_path / "out.mp4")
    assert len(video["times"]) == summary["frames_out"]
    reds = [float(np.median(v[:, :, 0])) for v in video["left"]]  # the stub's red is the frame index
    assert reds == pytest.approx(list(range(len(reds))), abs=3)  # every frame, in order, none lost before the stop


def test_live_source_with_frames_in_flight_drops_oldest_and_keeps_order():
    from nirvision.io.base import Frame
    from nirvision.runtime.engine import EngineOptions

    source = ListSource(indexed(80), live=True, pace=0.002)
    seen = []  # frames the workers ran
    taken = []  # (frame index, frames the source had produced) as the engine takes the frame from its queue

    class Watching(CopyableStub):
        def replica(self, threads):
            return Watching(self.delays, self.log)

        def infer_uint8(self, frames):
            i = int(frames[0, 0, 0])
            seen.append(i)
            if i == 0:  # inference falls behind (at any speed of the machine): the camera reads 10 frames first
                wait_for(lambda: source.frames_read >= 10, 60, "the source ten frames ahead")
            return super().infer_uint8(frames)

    class Recording(Sink):
        written = []

        def write(self, frame, image):
            self.written.append((frame.index, int(image[0, 0, 0])))

    par = FrameParallel(Watching(delays=(0.02, 0.005)), 2, threads=2)
    sink = Recording()
    try:
        engine = Engine(source, [sink], par, EngineOptions(queue_size=2))
        queue, get = engine._inq, engine._inq.get

        def watched_get(timeout):  # counts the source's frames under the queue's lock: no put can come between
            with queue._cond:
                item = get(timeout)
                if isinstance(item, Frame):
                    taken.append((item.index, source.frames_read))
                return item

        queue.get = watched_get
        summary = engine.run()
    finally:
        par.close()
    assert summary["frames_in"] == 80 and summary["dropped"] >= 10 - 2 - 2 - 1  # frames 0 and 1 taken, 2 queued, 1 in the reader's hand
    assert summary["frames_out"] + summary["dropped"] == 80
    assert max(seen) == 79  # the newest frame made it
    assert sorted(seen) == [i for i, _ in taken]  # a worker ran every frame taken, once
    indexes = [i for i, _ in sink.written]
    assert indexes == sorted(indexes) and len(indexes) == summary["frames_out"]  # written in order
    assert all(i == red for i, red in sink.written)  # each with its own output
    # when the engine takes frame i, at most the rest of the queue (2 - 1) and the frame in the reader's hand are newer
    assert max(produced - 1 - i for i, produced in taken) <= 2
