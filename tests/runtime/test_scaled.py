"""``--infer-scale``: the model at a fraction of the frame's size, colours back at full size with the NIR's detail."""
import cv2
import numpy as np
import pytest
import torch

from nirvision.io import open_source
from nirvision.io.base import Sink
from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.parallel import FrameParallel
from nirvision.runtime.backends.scaled import DETAIL, ScaledInference, check_scale, scaled_size
from nirvision.runtime.engine import Engine
from tests.helpers import nir_frames, tiny_chain
from tests.io.media import StubBackend, run_recorded


class Shapes(StubBackend):
    """The stub (RGB = (x, 255 - x, x // 2)) recording the frame sizes it was given."""

    can_replicate = True

    def __init__(self, seen=None):
        super().__init__()
        self.seen = seen if seen is not None else []

    def infer_uint8(self, frames):
        self.seen.append(frames.shape)
        return super().infer_uint8(frames)

    def replica(self, threads):
        return Shapes(self.seen)


def expected(frames: np.ndarray, scale: float) -> np.ndarray:
    """The stub through ScaledInference, in float: up(stub(down(nir))) + DETAIL * (nir - up(down(nir)))."""
    n, h, w = frames.shape
    sh, sw = scaled_size(h, w, scale)
    out = []
    for f in frames:
        small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
        rgb = np.stack([small, 255 - small, small // 2], axis=-1)
        up = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        base = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        out.append(np.clip(up + DETAIL * (f.astype(np.float64) - base)[..., None], 0, 255))
    return np.stack(out)


def test_frames_run_small_and_come_back_full_size_with_their_detail():
    frames = nir_frames(2, 45, 67)
    backend = ScaledInference(Shapes(), 0.5)
    out = backend.infer_uint8(frames)
    assert backend.inner.seen == [(2, 22, 34)]  # round(22.5) = 22, round(33.5) = 34
    assert out.shape == (2, 45, 67, 3) and out.dtype == np.uint8
    assert np.abs(out - expected(frames, 0.5)).max() <= 1.0  # whole levels: rounded once more than the float formula
    # the detail is there: the output follows the full-size frame closer than the bare upsampling does
    bare = np.stack([cv2.resize(np.stack([s, 255 - s, s // 2], -1), (67, 45), interpolation=cv2.INTER_LINEAR)
                     for s in (cv2.resize(f, (34, 22), interpolation=cv2.INTER_AREA) for f in frames)])
    red = out[..., 0].astype(float) - frames
    assert np.abs(red).mean() < np.abs(bare[..., 0].astype(float) - frames).mean()
    # scale 1 is the backend itself; tiny frames keep MIN_SIDE pixels
    assert scaled_size(480, 640, 1.0) == (480, 640) and scaled_size(10, 12, 0.1) == (8, 8)
    assert scaled_size(5, 7, 0.5) == (5, 7)  # already under MIN_SIDE: run as they are, never enlarged
    assert np.array_equal(ScaledInference(Shapes(), 1.0).infer_uint8(frames), StubBackend().infer_uint8(frames))


def test_engine_gets_each_frame_back_in_order_at_full_size_with_workers():
    # two copies that finish frames out of order: the engine still writes frame i's own colours
    seen = []
    par = FrameParallel(Shapes(seen), 2, threads=2)
    backend = ScaledInference(par, 0.25)
    assert backend.max_in_flight == 2 and backend.workers == 2  # the inner backend's, for the engine and the CLI
    summary, written = run_recorded("synthetic:96x64@25:12", backend)
    assert summary["frames_out"] == 12 and summary["backend"]["infer_scale"] == 0.25
    assert {s for s in seen} == {(1, 16, 24)}
    assert [i for i, _, _ in written] == list(range(12))
    for _, image, nir in written:
        assert image.shape == (64, 96, 3)
        assert np.abs(image - expected(nir[None], 0.25)[0]).max() <= 1.0


def test_float_path_agrees_with_the_frame_path_on_a_real_chain():
    torch.manual_seed(0)
    backend = create_backend("eager", tiny_chain(), "cpu", "fp32", infer_scale=0.5)
    assert isinstance(backend, ScaledInference) and backend.name == "eager"
    frames = nir_frames(2, 48, 64)
    u8 = backend.infer_uint8(frames)
    x = torch.from_numpy(frames[:, None].astype(np.float32) / 127.5 - 1.0)
    f = ((backend.infer(x).permute(0, 2, 3, 1).numpy() + 1.0) * 127.5)
    # the frame path rounds the small frame to whole levels before the model (the float path does
    # not), then the output and the detail: each rounding adds about a quarter level on average
    assert f.shape == u8.shape and np.abs(f - u8).mean() < 0.8 and np.abs(f - u8).max() < 5
    # and it is not the full-size chain's output
    full = create_backend("eager", tiny_chain(), "cpu", "fp32").infer_uint8(frames)
    assert np.abs(full.astype(int) - u8).mean() > 0.1


@pytest.mark.parametrize("bad", [0, 0.01, -0.5, 1.5, "half", None, float("nan")])
def test_bad_scales_are_refused_before_anything_is_built(bad):
    with pytest.raises(ValueError, match="expected a number from 0.05 to 1"):
        check_scale(bad)
    with pytest.raises(ValueError, match="infer scale"):
        create_backend("eager", tiny_chain(), "cpu", "fp32", infer_scale=bad)


def test_scaled_workers_give_what_one_scaled_session_gives(tmp_path):
    # the frames are resized in the engine's inference loop, the workers run the small frames:
    # at 1920x1080 (scale 0.5, 2 cores) that measured 8.1-9.1 FPS, against 7.9-8.5 with each
    # worker resizing its own frames (OpenCV's threads then compete with the other worker)
    pytest.importorskip("onnxruntime")
    net = tiny_chain()
    opts = dict(cache_dir=str(tmp_path / "cache"), threads=2)
    backend = create_backend("onnxruntime", net, "cpu", "fp32", workers=2, infer_scale=0.5, **opts)
    one = create_backend("onnxruntime", net, "cpu", "fp32", infer_scale=0.5, **opts)
    try:
        assert isinstance(backend, ScaledInference) and isinstance(backend.inner, FrameParallel)
        assert backend.workers == 2 and backend.max_in_flight == 2 and backend.infer_scale == 0.5
        written = []

        class Recording(Sink):
            def write(self, frame, image):
                written.append((image.copy(), frame.image.copy()))

        summary = Engine(open_source("synthetic:96x64@25:6"), [Recording()], backend).run()
        assert summary["frames_out"] == 6 and summary["backend"]["infer_scale"] == 0.5
        for image, nir in written:  # the same as one scaled session frame by frame
            assert image.shape == (64, 96, 3) and np.array_equal(image, one.infer_uint8(nir[None])[0])
    finally:
        backend.close()
        one.close()
