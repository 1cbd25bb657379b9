"""``--levels``: frames exposed unlike the training images are brought to the training images' NIR levels."""
import numpy as np
import pytest
import torch

from nirvision.io import open_source
from nirvision.io.base import Sink
from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.levels import LevelsInference
from nirvision.runtime.engine import Engine
from nirvision.runtime.levels import VCIP_BAND, LevelsBand, LevelsTracker, band_of, frame_levels, normalize, target_levels
from tests.helpers import nir_frames, tiny_chain
from tests.io.media import StubBackend

BAND = LevelsBand(low=(50.0, 80.0), high=(200.0, 240.0), low_mean=65.0, high_mean=220.0, images=10)


def ramp(lo: int, hi: int, shape=(60, 100)) -> np.ndarray:
    """A frame whose values run evenly from ``lo`` to ``hi``."""
    return np.linspace(lo, hi, shape[0] * shape[1]).round().astype(np.uint8).reshape(shape)


class Seen(StubBackend):
    """The stub, keeping the frames it was given."""

    def __init__(self):
        super().__init__()
        self.frames = []

    def infer_uint8(self, frames):
        self.frames.extend(np.asarray(frames).copy())
        return super().infer_uint8(frames)


def test_frame_levels_are_the_1st_and_99th_percentiles():
    rng = np.random.default_rng(0)
    for frame in (rng.integers(0, 256, (120, 160), dtype=np.uint8), nir_frames(1, 90, 70)[0], ramp(30, 200)):
        lo, hi = frame_levels(frame)
        assert abs(lo - np.percentile(frame, 1)) <= 1 and abs(hi - np.percentile(frame, 99)) <= 1
    assert frame_levels(np.full((8, 8), 77, np.uint8)) == (77.0, 77.0)


def test_band_from_images_and_back():
    images = [ramp(10 * i, 150 + 10 * i) for i in range(9)]  # levels 1st ~ 10i + 1.4, 99th ~ 150 + 10i - 1.4
    band = LevelsBand.from_images(images)
    lows = [frame_levels(im)[0] for im in images]
    assert band.images == 9 and band.low == tuple(np.quantile(lows, [0.25, 0.75])) and band.low_mean == pytest.approx(np.mean(lows))
    assert LevelsBand.from_dict(band.to_dict()) == band
    assert band_of({"nir_levels": band.to_dict()}) == band and band_of({}) == VCIP_BAND
    for bad in ({"low": [1]}, {"low": [90, 50], "high": [200, 240], "low_mean": 60, "high_mean": 220}, "x"):
        with pytest.raises(ValueError, match="nir_levels"):
            LevelsBand.from_dict(bad)


def test_auto_leaves_frames_in_the_band_and_brings_the_others_in():
    inside = ramp(60, 225)
    assert np.array_equal(normalize(inside, BAND, "auto"), inside)  # like the training images: untouched
    for dark in (ramp(10, 90), ramp(0, 60)):
        lo, hi = frame_levels(normalize(dark, BAND, "auto"))
        assert BAND.low[0] - 1 <= lo <= BAND.low[1] + 1 and BAND.high[0] - 1 <= hi <= BAND.high[1] + 1
    assert target_levels(20, 250, BAND, "auto") == (50.0, 240.0) and target_levels(60, 210, BAND, "auto") == (60, 210)
    # stretch: every frame's levels onto the band's means; off: nothing
    for frame in (inside, ramp(10, 90)):
        lo, hi = frame_levels(normalize(frame, BAND, "stretch"))
        assert abs(lo - 65) <= 1.5 and abs(hi - 220) <= 1.5
    assert normalize(ramp(10, 90), BAND, "off") is not None and np.array_equal(normalize(ramp(10, 90), BAND, "off"), ramp(10, 90))
    flat = np.full((10, 10), 5, np.uint8)
    assert np.all(normalize(flat, BAND, "stretch") == round((65 + 220) / 2))  # a flat frame is moved, not divided by zero


def test_a_stream_follows_the_levels_smoothly_and_restarts_on_a_new_size():
    track = LevelsTracker(BAND, "stretch", rate=0.2)
    dark, bright = ramp(20, 100), ramp(60, 250)
    track(dark)
    assert track.levels == frame_levels(dark)
    out = track(bright)  # one frame later the map has moved a fifth of the way
    expect = tuple(a + 0.2 * (b - a) for a, b in zip(frame_levels(dark), frame_levels(bright)))
    assert track.levels == pytest.approx(expect)
    assert frame_levels(out)[1] > 220 + 5  # so this bright frame comes out brighter than the band's mean
    for _ in range(40):
        out = track(bright)
    assert frame_levels(out) == pytest.approx((65, 220), abs=1.5)  # settled
    track(ramp(20, 100, shape=(30, 40)))  # another size: another stream, no memory
    assert track.levels == frame_levels(ramp(20, 100, shape=(30, 40)))


def test_wrapper_normalizes_what_the_backend_sees_and_the_engine_keeps_the_original_nir():
    stub = Seen()
    backend = LevelsInference(stub, "auto", BAND)
    dark = ramp(0, 60)
    out = backend.infer_uint8(dark[None])
    assert np.array_equal(stub.frames[0], normalize(dark, BAND, "auto")) and out.shape == (1, 60, 100, 3)
    assert backend.levels == "auto" and backend.name == "stub"

    written = []

    class Recording(Sink):
        def write(self, frame, image):
            written.append(frame.image.copy())

    stub2 = Seen()
    summary = Engine(open_source("synthetic:64x48@25:5"), [Recording()], LevelsInference(stub2, "stretch", BAND)).run()
    assert summary["frames_out"] == 5 and summary["backend"]["levels"] == "stretch"
    track = LevelsTracker(BAND, "stretch")
    for original, seen in zip(written, stub2.frames):  # the model got the stream's levels, the writer the frame as it came
        assert np.array_equal(seen, track(original))
    assert not all(np.array_equal(a, b) for a, b in zip(written, stub2.frames))


def test_levels_through_create_backend_and_the_float_path():
    torch.manual_seed(0)
    backend = create_backend("eager", tiny_chain(), "cpu", "fp32", levels="stretch", levels_band=BAND)
    frames = (nir_frames(2, 48, 64).astype(np.float32) * 0.4).astype(np.uint8)  # under-exposed
    u8 = backend.infer_uint8(frames)
    x = torch.from_numpy(frames[:, None].astype(np.float32) / 127.5 - 1.0)
    f = (backend.infer(x).permute(0, 2, 3, 1).numpy() + 1.0) * 127.5
    assert np.abs(f - u8).mean() < 1.0  # the same map, rounded once more on the frame path
    plain = create_backend("eager", tiny_chain(), "cpu", "fp32").infer_uint8(frames)
    assert np.abs(plain.astype(int) - u8).mean() > 0.5  # and not the output for the dark frames as they are
    with pytest.raises(ValueError, match="levels 'bright': expected one of: off, auto, stretch"):
        create_backend("eager", tiny_chain(), "cpu", "fp32", levels="bright")


def test_levels_and_scale_together():
    backend = create_backend("eager", tiny_chain(), "cpu", "fp32", levels="auto", infer_scale=0.5)
    assert backend.levels == "auto" and backend.infer_scale == 0.5 and backend.name == "eager"  # both wrappers, one face
    frames = nir_frames(1, 48, 64)
    assert backend.infer_uint8(frames).shape == (1, 48, 64, 3)
    summary = Engine(open_source("synthetic:64x48@25:3"), [], backend).run()
    assert summary["frames_out"] == 3 and summary["backend"]["levels"] == "auto" and summary["backend"]["infer_scale"] == 0.5
