"""The public Python API: uint8 NIR frames in, uint8 RGB frames out, any size."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nirvision
from nirvision import api
from nirvision.api import Colorizer, WeightsNotFound, build_chain
from nirvision.models import CheckpointError, load_model_config, save_checkpoint
from nirvision.runtime.backends import BackendUnavailable




@pytest.fixture(scope="module")
def lite_weights(tmp_path_factory):
    """A lite checkpoint whose chain we also keep, to compare the API's frames against."""
    torch.manual_seed(5)
    config = load_model_config("lite")
    chain = build_chain(config).eval()
    path = save_checkpoint(tmp_path_factory.mktemp("w") / "lite.pt", config,
                           {"nir_to_gray": chain.nir_to_gray, "colorizer": chain.colorizer})
    return path, chain


@pytest.fixture(scope="module")
def colorizer(lite_weights):
    return Colorizer.load(lite_weights[0], device="cpu")


def frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def expected_rgb(chain, nir: np.ndarray) -> np.ndarray:
    """The chain's output for ``nir``, converted by hand: [0, 255] -> [-1, 1] -> RGB -> [0, 255]."""
    x = torch.from_numpy(nir.astype(np.float32) / 127.5 - 1.0)[None, None]
    with torch.no_grad():
        y = chain(x)[0]
    return ((y.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def test_odd_size_frame(colorizer, lite_weights):
    nir = frame(250, 333)
    rgb = colorizer(nir)
    assert rgb.dtype == np.uint8 and rgb.shape == (250, 333, 3)
    # by default (levels auto) the frame is first brought to the training images' levels: this
    # checkpoint records none, so those of the VCIP 2020 training split
    from nirvision.runtime.levels import VCIP_BAND, normalize

    ref = expected_rgb(lite_weights[1], normalize(nir, VCIP_BAND, "auto"))
    assert np.abs(rgb.astype(int) - ref.astype(int)).max() <= 1
    assert rgb.std() > 0  # not a constant image
    raw = Colorizer.load(lite_weights[0], device="cpu", levels="off")(nir)
    assert np.abs(raw.astype(int) - expected_rgb(lite_weights[1], nir).astype(int)).max() <= 1
    assert np.abs(raw.astype(int) - rgb.astype(int)).mean() > 0.5  # this random frame's levels are outside the band


@pytest.mark.parametrize("hw", [(1, 1), (7, 5)])
def test_tiny_frames(colorizer, hw):
    rgb = colorizer(frame(*hw))
    assert rgb.dtype == np.uint8 and rgb.shape == (*hw, 3)


def test_batch_equals_frames(colorizer):
    a, b = frame(64, 96, 1), frame(64, 96, 2)
    batch = colorizer.colorize_batch([a, b])
    assert batch.shape == (2, 64, 96, 3) and batch.dtype == np.uint8
    stacked = colorizer(np.stack([a, b]))  # an N x H x W array is a batch too
    assert np.array_equal(stacked, batch)
    for got, one in zip(batch, (a, b)):
        assert np.abs(got.astype(int) - colorizer(one).astype(int)).max() <= 1
    assert not np.array_equal(batch[0], batch[1])


def test_colour_and_16_bit_input_is_reduced_to_one_channel(colorizer):
    nir = frame(64, 64)
    rgb = colorizer(nir)
    assert np.array_equal(colorizer(np.repeat(nir[:, :, None], 3, axis=2)), rgb)
    assert np.array_equal(colorizer(nir.astype(np.uint16) << 8), rgb)


def test_bad_frames_are_refused(colorizer):
    with pytest.raises(ValueError, match="share one size"):
        colorizer.colorize_batch([frame(8, 8), frame(8, 9)])
    with pytest.raises(ValueError, match="no frames"):
        colorizer.colorize_batch([])
    with pytest.raises(ValueError, match="expected uint8"):
        colorizer(np.zeros((8, 8), dtype=np.int32))


def test_model_without_weights_is_random_init():
    c = Colorizer.load(model="lite", device="cpu")
    assert c.config.name == "lite" and c.meta["weights"] is None
    assert c(frame(16, 20)).shape == (16, 20, 3)


def test_missing_bundled_weights_say_so(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "default_weights_path", lambda: tmp_path / "none.pt")
    with pytest.raises(WeightsNotFound, match="no bundled weights"):
        Colorizer.load()


def test_weights_of_another_size_are_refused(lite_weights):
    with pytest.raises(CheckpointError, match=r"does not fit the model: it holds model 'lite' .*the config asks for 'paper'"):
        Colorizer.load(lite_weights[0], model="paper", device="cpu")


def test_unusable_device_or_precision(lite_weights):
    with pytest.raises(BackendUnavailable, match="fp16 needs a CUDA device"):
        Colorizer.load(lite_weights[0], device="cpu", precision="fp16")
    with pytest.raises(BackendUnavailable, match="unknown"):
        Colorizer.load(lite_weights[0], device="cpu", backend="nonesuch")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA is not available"):
            Colorizer.load(lite_weights[0], device="cuda")


def test_top_level_names():
    assert nirvision.Colorizer is Colorizer
    with pytest.raises(AttributeError):
        nirvision.NoSuchThing  # noqa: B018


def test_colorize_video_through_the_engine(tmp_path, lite_weights):
    import cv2

    from nirvision.io import open_source
    from tests.io.media import make_clip, read_video

    make_clip(tmp_path / "in.mp4", [40 * i for i in range(50)], size=(64, 48), audio_packets=12)
    with Colorizer.load(lite_weights[0], device="cpu", levels="off") as colorizer:
        summary = colorizer.colorize_video(tmp_path / "in.mp4", [tmp_path / "out.mp4", tmp_path / "pngs"], start=0.4, end=1.2)
        assert summary["frames_out"] == 20 and summary["dropped"] == 0
        out = read_video(tmp_path / "out.mp4")
        assert out["times"] == pytest.approx([0.04 * i for i in range(20)], abs=1e-6) and out["audio"]
        pngs = sorted((tmp_path / "pngs").iterdir())
        assert len(pngs) == 20
        first_nir = next(iter(open_source(str(tmp_path / "in.mp4"), start=0.4))).image
        png = cv2.cvtColor(cv2.imread(str(pngs[0])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(png, colorizer(first_nir))  # the engine's frames are the API's frames
        again = colorizer.colorize_video(tmp_path / "in.mp4", tmp_path / "again.mkv", max_frames=5)  # the backend stays open
        assert again["frames_out"] == 5
    with pytest.raises(ValueError, match="no outputs"):
        Colorizer(colorizer.backend, colorizer.config).colorize_video(tmp_path / "in.mp4", [])


def test_colorize_video_checks_what_the_command_checks(tmp_path, lite_weights):
    import socket

    from nirvision.errors import InputError
    from tests.io.media import make_clip, read_video

    make_clip(tmp_path / "in.mp4", [40 * i for i in range(30)], size=(64, 48))
    (tmp_path / "prev.mp4").write_bytes(b"an earlier result")
    with Colorizer.load(lite_weights[0], device="cpu", levels="off") as colorizer:
        with pytest.raises(InputError, match="start / end: source synthetic:64x48@25:5 is not a video file"):
            colorizer.colorize_video("synthetic:64x48@25:5", tmp_path / "s.mp4", start=1, end=2)
        with pytest.raises(InputError, match=r"source rtsp://admin:\*\*\*@127.0.0.1:1/x is not a video file") as err:
            colorizer.colorize_video("rtsp://admin:hunter2@127.0.0.1:1/x", tmp_path / "r.mp4", start=1)
        assert "hunter2" not in str(err.value)
        with pytest.raises(InputError, match="expected segment too"):
            colorizer.colorize_video(tmp_path / "in.mp4", tmp_path / "k.mp4", keep=3)
        with pytest.raises(InputError, match="is the source itself"):
            colorizer.colorize_video(tmp_path / "in.mp4", [tmp_path / "prev.mp4", tmp_path / "in.mp4"])
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        try:
            with pytest.raises(InputError, match="cannot listen there"):
                colorizer.colorize_video(tmp_path / "in.mp4", [tmp_path / "prev.mp4", f"http://127.0.0.1:{busy.getsockname()[1]}"])
        finally:
            busy.close()
        assert (tmp_path / "prev.mp4").read_bytes() == b"an earlier result"  # nothing opened it
        summary = colorizer.colorize_video(tmp_path / "in.mp4", tmp_path / "seg.mp4", segment="0.5m", contact_sheet=True)
        assert summary["frames_out"] == 30 and len(summary["pieces"]) == 1 and (tmp_path / "seg_sheet.png").is_file()
        assert len(read_video(tmp_path / "seg_000.mp4")["times"]) == 30


def test_threads_apply_to_every_backend_and_unknown_options_are_refused(lite_weights):
    from nirvision.errors import InputError

    before = torch.get_num_threads()
    try:
        Colorizer.load(lite_weights[0], device="cpu", threads=1)  # eager: torch's threads
        assert torch.get_num_threads() == 1
        ort = Colorizer.load(lite_weights[0], device="cpu", backend="onnxruntime", threads=2, workers=1)
        assert ort.backend.threads == 2
        ort.close()
    finally:
        torch.set_num_threads(before)
    for backend in ("eager", "onnxruntime", "auto"):
        for bad in (0, -1, 2000, "x", 1.5, True):
            with pytest.raises(InputError, match=f"threads {bad!r}: expected 1 to 1024 CPU threads"):
                Colorizer.load(lite_weights[0], device="cpu", backend=backend, threads=bad)
        with pytest.raises(InputError, match=f"backend {backend}: unknown option bogus"):
            Colorizer.load(lite_weights[0], device="cpu", backend=backend, bogus=1)
    assert torch.get_num_threads() == before


def test_colorize_video_checks_its_options_before_opening_anything(tmp_path, lite_weights):
    from nirvision.errors import InputError
    from tests.io.media import make_clip

    make_clip(tmp_path / "in.mp4", [40 * i for i in range(50)], size=(64, 48))
    bad = [
        (dict(max_frames=0), "max_frames 0: expected at least 1"),
        (dict(max_frames=-1), "max_frames -1: expected at least 1"),
        (dict(max_frames=2.5), "max_frames 2.5: expected at least 1"),
        (dict(start=-1), "start -1: expected a time"),
        (dict(start=float("nan")), "start nan: expected a time"),
        (dict(end=float("inf")), "end inf: expected a time"),
        (dict(start="1:xx"), "start 1:xx: expected a time such as 90"),
        (dict(crf=-5), "crf -5: expected 0 .lossless. to 51"),
        (dict(crf=99), "crf 99: expected 0 .lossless. to 51"),
        (dict(crf="abc"), "crf 'abc': expected 0 .lossless. to 51"),
        (dict(preset="quick"), "preset 'quick': expected one of"),
        (dict(threads=-1), "threads: expected a positive integer or auto"),
        (dict(crff=30), "unknown option crff; expected some of: crf, preset"),
        (dict(segment=0), "segment 0: expected a duration"),
        (dict(segment=1, keep=0), "keep 0: expected at least 1"),
        (dict(progress=5), "progress 5: expected a callable"),
    ]
    with Colorizer.load(lite_weights[0], device="cpu", levels="off") as colorizer:
        for i, (kw, message) in enumerate(bad):
            with pytest.raises(InputError, match=message):
                colorizer.colorize_video(tmp_path / "in.mp4", tmp_path / f"o{i}.mp4", **kw)
            assert not (tmp_path / f"o{i}.mp4").exists(), kw
        # the command's text forms of a time, and the encoder options as the command takes them
        seen = []
        summary = colorizer.colorize_video(tmp_path / "in.mp4", tmp_path / "t.mp4", start="0:00.4", end="1.2", crf=30,
                                           preset="ultrafast", threads="auto", progress=seen.append)
        assert summary["frames_out"] == 20


def test_two_channel_frames_are_refused_and_batch_says_which_a_3d_array_is(colorizer):
    from nirvision.errors import InputError

    nir = frame(48, 64)
    with pytest.raises(InputError, match=r"shape \(48, 64, 2\): 2 channels are neither gray, RGB nor RGBA"):
        colorizer(np.dstack([nir, nir]))
    narrow = np.stack([nir[:, :4]] * 5)  # 5 frames 4 pixels wide: by the rule, one RGBA image
    assert colorizer(narrow).shape == (5, 48, 3)
    one_by_one = colorizer(narrow, batch=True)
    assert one_by_one.shape == (5, 48, 4, 3)
    assert np.array_equal(one_by_one[0], colorizer(nir[:, :4]))
    assert colorizer(np.stack([nir, nir]), batch=True).shape == (2, 48, 64, 3)
    assert colorizer(np.stack([nir, nir])[..., None]).shape == (2, 48, 64, 3)  # 4-D: a batch
    assert colorizer(np.dstack([nir] * 3), batch=False).shape == (48, 64, 3)
    with pytest.raises(ValueError, match=r"expected an H x W"):
        colorizer(np.stack([nir, nir]), batch=False)
    with pytest.raises(InputError, match="batch of shape"):
        colorizer(nir, batch=True)


def test_weights_that_are_not_a_checkpoint_path_say_why(tmp_path):
    from nirvision.errors import InputError

    with pytest.raises(InputError, match="weights '': empty path"):
        Colorizer.load("")
    with pytest.raises(InputError, match="is a folder, expected a checkpoint file"):
        Colorizer.load(tmp_path)
    with pytest.raises(InputError, match="weights 123: expected a path"):
        Colorizer.load(123)


def test_an_output_given_twice_is_refused(tmp_path, lite_weights):
    from nirvision.errors import InputError
    from tests.io.media import make_clip

    make_clip(tmp_path / "in.mp4", [40 * i for i in range(5)], size=(64, 48))
    (tmp_path / "v").mkdir()
    with Colorizer.load(lite_weights[0], device="cpu", levels="off") as colorizer:
        with pytest.raises(InputError, match="dup.mp4: given twice"):
            colorizer.colorize_video(tmp_path / "in.mp4", [tmp_path / "dup.mp4", tmp_path / "v" / ".." / "dup.mp4"])
    assert not (tmp_path / "dup.mp4").exists()


def test_colorize_video_that_cannot_run_leaves_an_earlier_output_as_it_was(tmp_path, monkeypatch):
    from tests.io.media import make_clip

    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    make_clip(tmp_path / "in.mp4", [0, 40, 80], size=(64, 48))
    (tmp_path / "out.mp4").write_bytes(b"an earlier run's output")
    colorizer = Colorizer.load(model="lite", backend="onnxruntime", precision="int8", workers=1)
    try:
        with pytest.raises(BackendUnavailable, match="no calibrated int8 model for these weights at 64x48"):
            colorizer.colorize_video(tmp_path / "in.mp4", tmp_path / "out.mp4")
    finally:
        colorizer.close()
    assert (tmp_path / "out.mp4").read_bytes() == b"an earlier run's output"


def test_colorize_video_takes_one_source_and_fps_where_the_command_takes_it(tmp_path, lite_weights):
    import cv2

    from nirvision.errors import InputError
    from tests.io.media import make_clip, read_video

    (tmp_path / "vids").mkdir()
    make_clip(tmp_path / "vids" / "a.mp4", [0, 40, 80])
    make_clip(tmp_path / "vids" / "b.mkv", [0, 40])
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.full((48, 64), 40 * i, np.uint8))
    a, b = tmp_path / "vids" / "a.mp4", tmp_path / "vids" / "b.mkv"
    with Colorizer.load(lite_weights[0], device="cpu", levels="off") as colorizer:
        # several sources: refused, naming the command that runs them as a batch
        with pytest.raises(InputError, match=rf"colorize_video takes one source; for several, call it once for each .*"
                                             rf"nirvision colorize {a} {b} -o {tmp_path / 'out'}$"):
            colorizer.colorize_video([a, str(b)], tmp_path / "out")
        with pytest.raises(InputError, match=r"source \['rtsp://u:\*\*\*@h/1', 'x.mp4'\]: colorize_video takes one source") as err:
            colorizer.colorize_video(("rtsp://u:pw9@h/1", "x.mp4"), tmp_path / "o.mp4")
        assert "pw9" not in str(err.value)
        for spec in (tmp_path / "vids", str(tmp_path / "vids" / "*")):
            with pytest.raises(InputError, match=rf"source {re.escape(str(spec))}: names 2 videos, which the command colorizes as a batch; "
                                                 r"colorize_video takes one source"):
                colorizer.colorize_video(spec, tmp_path / "out")
        assert not (tmp_path / "out").exists() and not (tmp_path / "o.mp4").exists()
        # fps: an image folder's frame rate, as the command's --fps
        summary = colorizer.colorize_video(tmp_path / "imgs", tmp_path / "imgs.mp4", fps=10)
        assert summary["frames_out"] == 3 and read_video(tmp_path / "imgs.mp4")["times"] == pytest.approx([0, 0.1, 0.2], abs=1e-6)
        colorizer.colorize_video(tmp_path / "imgs", tmp_path / "again.mp4")
        assert read_video(tmp_path / "again.mp4")["times"] == pytest.approx([0, 0.04, 0.08], abs=1e-6)  # 25 without it
        bad = [(dict(source=a, fps=10), rf"fps 10: the frame rate given to image folders and globs .*; source {a} is a video file, whose "
                                        "frames keep their own timestamps; expected no fps$"),
               (dict(source="synthetic:64x48:3", fps=5), r"synthetic:64x48:3 is a synthetic clip \(its rate: synthetic:WIDTHxHEIGHT@FPS\)"),
               (dict(source="rtsp://u:pw9@h/1", fps=5), r"source rtsp://u:\*\*\*@h/1 is a stream"),
               (dict(source=tmp_path / "imgs", fps=0), "fps 0: expected a frame rate of at least 0.001 and at most 1000"),
               (dict(source=tmp_path / "imgs", fps=1e6), r"fps 1e\+06: expected a frame rate of at least 0.001 and at most 1000"),
               (dict(source=tmp_path / "imgs", fps=float("nan")), "fps nan: expected a frame rate"),
               (dict(source=tmp_path / "imgs", fps="10"), "fps '10': expected a frame rate"),
               (dict(source=tmp_path / "imgs", fps=True), "fps True: expected a frame rate")]
        for i, (kw, message) in enumerate(bad):
            with pytest.raises(InputError, match=message) as err:
                colorizer.colorize_video(kw["source"], tmp_path / f"f{i}.mp4", fps=kw["fps"])
            assert "pw9" not in str(err.value) and not (tmp_path / f"f{i}.mp4").exists()
    assert api.check_fps(12.5, str(tmp_path / "imgs")) == 12.5 and api.check_fps(None, str(a)) is None
    with pytest.raises(InputError, match=rf"^--fps 10: the frame rate given to image folders and globs \(and asked of a camera\); source {a} "
                                         r"is a video file, whose frames keep their own timestamps; expected no --fps$"):
        api.check_fps(10.0, str(a))


def test_a_big_batch_runs_in_chunks_with_the_same_result(monkeypatch):
    import nirvision.api as api

    colorizer = Colorizer.load(model="lite", device="cpu")
    frames = [np.full((32, 48), 10 * i, np.uint8) for i in range(7)]
    whole = colorizer.colorize_batch(frames)
    sizes = []
    real = colorizer.backend.infer_uint8
    monkeypatch.setattr(colorizer.backend, "infer_uint8", lambda batch: sizes.append(len(batch)) or real(batch))
    monkeypatch.setattr(api, "BATCH_PIXELS", 3 * 32 * 48)  # three such frames a chunk
    chunked = colorizer.colorize_batch(frames)
    assert sizes == [3, 3, 1] and chunked.shape == (7, 32, 48, 3)
    assert np.abs(chunked.astype(int) - whole.astype(int)).max() <= 1
