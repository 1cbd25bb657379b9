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
    good = {"low": [50, 80], "high": [200, 240], "low_mean": 60, "high_mean": 220}
    for bad in ({"low": [1]}, {**good, "low": [90, 50]}, {**good, "high": [201]}, {**good, "low": [1, 2, 3]}, "x"):
        with pytest.raises(ValueError, match="nir_levels"):
            LevelsBand.from_dict(bad)
    # a checkpoint that recorded something else: an error naming it (the CLI's exit 2)
    from nirvision.models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=r"weights /w/x\.pt: nir_levels: expected low, high"):
        band_of({"weights": "/w/x.pt", "nir_levels": {**good, "high": [201]}})


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
    # nothing to stretch: a black or flat frame, or one of faint noise, is left as it is
    rng = np.random.default_rng(1)
    for flat in (np.zeros((10, 10), np.uint8), np.full((10, 10), 5, np.uint8), rng.integers(0, 3, (40, 40), dtype=np.uint8)):
        for mode in ("auto", "stretch"):
            assert np.array_equal(normalize(flat, BAND, mode), flat)
    # a dim frame of little contrast gets at most 4x its contrast, about the middle of the levels
    dim = ramp(100, 120)
    lo, hi = frame_levels(normalize(dim, BAND, "stretch"))
    assert hi - lo == pytest.approx(4 * np.subtract(*frame_levels(dim)[::-1]), abs=2)
    assert (lo + hi) / 2 == pytest.approx((65 + 220) / 2, abs=2)


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
    frames = (nir_frames(1, 48, 64) * 0.3).astype(np.uint8)  # under-exposed: auto brings them in
    out = backend.infer_uint8(frames)
    assert out.shape == (1, 48, 64, 3)
    # the levels on the full-size frame, then the model at half size: both act
    from nirvision.runtime.backends.scaled import ScaledInference

    scaled = ScaledInference(create_backend("eager", tiny_chain(), "cpu", "fp32"), 0.5)
    assert np.array_equal(out, LevelsInference(scaled, "auto", VCIP_BAND).infer_uint8(frames))
    assert not np.array_equal(out, scaled.infer_uint8(frames))
    summary = Engine(open_source("synthetic:64x48@25:3"), [], backend).run()
    assert summary["frames_out"] == 3 and summary["backend"]["levels"] == "auto" and summary["backend"]["infer_scale"] == 0.5


def test_each_run_starts_afresh_and_image_folders_are_not_smoothed(tmp_path):
    import cv2

    from tests.io.media import ListSource

    stub = Seen()
    backend = LevelsInference(stub, "stretch", BAND)
    dark, normal = ramp(10, 70, shape=(48, 64)), ramp(60, 230, shape=(48, 64))
    # a video stream: the second frame's map is pulled towards the first's
    Engine(ListSource([dark, normal]), [], backend).run()
    smoothed = stub.frames[1]
    assert not np.array_equal(smoothed, normalize(normal, BAND, "stretch"))
    # the next run through the same backend (the next video of a batch) starts from its own levels
    stub.frames.clear()
    Engine(ListSource([normal, normal]), [], backend).run()
    assert np.array_equal(stub.frames[0], normalize(normal, BAND, "stretch"))
    # an image folder: unrelated pictures, each on its own
    for i, img in enumerate((dark, normal)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    stub.frames.clear()
    Engine(open_source(str(tmp_path)), [], backend).run()
    assert np.array_equal(stub.frames[1], normalize(normal, BAND, "stretch"))


def test_api_takes_a_band_of_its_own():
    from nirvision import Colorizer

    colorizer = Colorizer.load(backend="eager", device="cpu", levels="stretch", levels_band=BAND)
    assert colorizer.backend.band == BAND and colorizer.backend.levels == "stretch"
    bundled = Colorizer.load(backend="eager", device="cpu").backend.band  # what the bundled weights recorded
    assert bundled.images == 330 and (bundled.low, bundled.high) == (VCIP_BAND.low, VCIP_BAND.high)
    assert bundled.low_mean == pytest.approx(VCIP_BAND.low_mean, abs=0.01) and bundled.high_mean == pytest.approx(VCIP_BAND.high_mean, abs=0.01)
