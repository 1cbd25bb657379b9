"""--flip-average: each frame's colours averaged with those of its mirror image."""
import threading

import numpy as np
import pytest
import torch

from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.flip import FlipAverage, mean_uint8
from nirvision.runtime.backends.parallel import FrameParallel
from tests.helpers import nir_frames, tiny_chain
from tests.io.media import StubBackend, run_recorded


class Leftward(StubBackend):
    """Not mirror-symmetric: each output column depends on its position."""

    def infer_uint8(self, frames):
        out = super().infer_uint8(frames).astype(np.int32)
        out[..., 0] += np.arange(frames.shape[2])[None, None, :]  # red grows to the right
        return np.clip(out, 0, 255).astype(np.uint8)

    def replica(self, threads):
        return Leftward(self.delay, self.on_call)


def test_the_two_answers_are_averaged_mirrored_back():
    frames = nir_frames(2, 24, 32) // 2  # (no red saturates below)
    plain = Leftward().infer_uint8(frames)
    mirrored = Leftward().infer_uint8(frames[:, :, ::-1].copy())[:, :, ::-1]
    out = FlipAverage(Leftward()).infer_uint8(frames)
    assert np.array_equal(out, mean_uint8(plain, mirrored)) and not np.array_equal(out, plain)
    # red: the stub's NIR value plus, on average over the two, half the width less a half
    expected_red = np.clip(frames.astype(int) + 31 / 2, 0, 255)
    assert np.abs(out[..., 0].astype(int) - expected_red).max() <= 1
    assert np.array_equal(mean_uint8(np.array([0, 1, 254], np.uint8), np.array([1, 2, 255], np.uint8)), [1, 2, 255])  # halves up


def test_a_real_chain_frame_path_float_path_and_engine_agree():
    torch.manual_seed(0)
    chain = tiny_chain()
    base = create_backend("eager", chain, "cpu", "fp32")
    flip = create_backend("eager", chain, "cpu", "fp32", flip_average=True)
    assert isinstance(flip, FlipAverage) and flip.name == "eager"
    frames = nir_frames(2, 48, 64)
    plain = base.infer_uint8(frames)
    u8 = flip.infer_uint8(frames)
    assert np.array_equal(u8, mean_uint8(plain, base.infer_uint8(frames[:, :, ::-1].copy())[:, :, ::-1]))
    assert np.abs(u8.astype(int) - plain).mean() > 0.1  # the tiny chain is not mirror-symmetric
    x = torch.from_numpy(frames[:, None].astype(np.float32) / 127.5 - 1.0)
    f = (flip.infer(x).permute(0, 2, 3, 1).numpy() + 1.0) * 127.5
    assert np.abs(f - u8).max() <= 1.0  # the float path: the same mean before rounding
    assert np.array_equal(flip.submit(frames).result(), u8)


def test_with_workers_both_halves_run_side_by_side_and_frames_stay_in_order():
    seen = []
    lock = threading.Lock()

    def record(frames):
        with lock:
            seen.append(threading.get_ident())

    backend = FlipAverage(FrameParallel(Leftward(delay=0.02, on_call=record), 2, threads=2))
    assert backend.flip_average and backend.workers == 2 and backend.max_in_flight == 2
    summary, written = run_recorded("synthetic:64x48@25:10", backend)
    assert summary["frames_out"] == 10 and summary["backend"]["flip_average"] is True
    assert len(seen) == 20 and len(set(seen)) == 2  # two inferences a frame, on both workers
    assert [i for i, _, _ in written] == list(range(10))
    for _, image, nir in written:
        assert np.array_equal(image, FlipAverage(Leftward()).infer_uint8(nir[None])[0])


def test_flip_average_on_the_command_line(tmp_path, capsys):
    from nirvision.cli import main

    code = main(["colorize", "synthetic:64x48@25:4", "-o", str(tmp_path / "o.mp4"), "--model", "lite", "--threads", "1",
                 "--flip-average", "--no-progress", "--stats-json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 0 and "each frame also colorized mirrored and the two averaged" in err, err
    import json

    assert json.loads((tmp_path / "s.json").read_text())["backend"]["flip_average"] is True


def test_the_inference_time_of_a_frame_counts_halves_side_by_side_once():
    from nirvision.runtime.backends.base import Pending
    from nirvision.runtime.backends.flip import FlipPending

    a, b = np.zeros((1, 2, 2, 3), np.uint8), np.zeros((1, 2, 2, 3), np.uint8)
    both = FlipPending(Pending(a, 0.05), Pending(b, 0.04), side_by_side=True)
    one_after_other = FlipPending(Pending(a, 0.05), Pending(b, 0.04))
    both.result(), one_after_other.result()
    assert both.seconds == pytest.approx(0.05) and one_after_other.seconds == pytest.approx(0.09)


def test_frames_one_pixel_wide():
    torch.manual_seed(0)
    chain = tiny_chain()
    base = create_backend("eager", chain, "cpu", "fp32")
    flip = create_backend("eager", chain, "cpu", "fp32", flip_average=True)
    frames = nir_frames(2, 16, 1)  # (width 1: no flip of a view may reach torch with its negative stride)
    out = flip.infer_uint8(frames)
    assert out.shape == (2, 16, 1, 3)
    assert np.array_equal(out, base.infer_uint8(frames))  # a column is its own mirror image
    assert np.array_equal(flip.submit(frames).result(), out)
