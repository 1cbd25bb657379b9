"""Sinks through the engine: video files keep timestamps and audio, folders keep names and sizes."""
import cv2
import numpy as np
import pytest

from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.runtime.engine import Engine
from tests.io.media import ListSource, StubBackend, make_clip, read_video


def run(source, *sinks):
    return Engine(source, list(sinks), StubBackend()).run()


def test_vfr_clip_with_audio_keeps_frames_timestamps_and_audio(tmp_path):
    pts = [0, 40, 80, 200, 240, 500, 520, 540, 900, 1000]
    make_clip(tmp_path / "in.mp4", pts, audio_packets=10)
    src = open_source(str(tmp_path / "in.mp4"))
    summary = run(src, open_sink(str(tmp_path / "out.mp4"), src.info))
    a, b = read_video(tmp_path / "in.mp4"), read_video(tmp_path / "out.mp4")
    assert summary["frames_in"] == summary["frames_out"] == len(pts) and summary["dropped"] == 0
    assert b["times"] == pytest.approx(a["times"], abs=1e-6)
    assert b["times"] == pytest.approx([p / 1000 for p in pts], abs=1e-6)
    assert len(a["audio"]) >= 10 and b["audio"] == a["audio"]  # same packets, same times, same bytes
    # the stub's red channel is the NIR value: the picture went through
    assert int(np.median(b["left"][4][:, :20, 0])) == pytest.approx(32, abs=4)


def test_mkv_output_and_no_audio_option(tmp_path):
    make_clip(tmp_path / "in.mp4", [0, 40, 120], audio_packets=4)
    src = open_source(str(tmp_path / "in.mp4"), audio=False)
    run(src, open_sink(str(tmp_path / "out.mkv"), src.info))
    out = read_video(tmp_path / "out.mkv")
    assert out["times"] == pytest.approx([0, 0.04, 0.12], abs=1e-6) and out["audio"] == []


def test_encoder_threads_option_reaches_x264(tmp_path):
    src = open_source("synthetic:64x48@25:6")
    sink = open_sink(str(tmp_path / "out.mp4"), src.info, threads=1)
    assert sink.options["threads"] == "1"
    run(src, sink)
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 6
    assert "threads" not in open_sink(str(tmp_path / "other.mp4"), src.info).options  # x264 chooses by default


def test_image_folder_to_pngs_keeps_names_and_sizes(tmp_path):
    src_dir, out_dir = tmp_path / "nir", tmp_path / "rgb"
    src_dir.mkdir()
    sizes = {"scene_01.png": (64, 48), "scene_02.png": (33, 21), "night.png": (80, 60)}
    for name, (w, h) in sizes.items():
        cv2.imwrite(str(src_dir / name), np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8))
    src = open_source(str(src_dir))
    summary = run(src, open_sink(str(out_dir), src.info))
    assert summary["frames_out"] == 3
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(sizes)
    for name, (w, h) in sizes.items():
        img = cv2.imread(str(out_dir / name), cv2.IMREAD_UNCHANGED)
        assert img.shape == (h, w, 3)
        nir = cv2.imread(str(src_dir / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(img[:, :, 2], nir)  # BGR on disk: red = the stub's NIR copy


def test_side_by_side_and_odd_size_video(tmp_path):
    imgs = [np.full((21, 33), 10 * i, np.uint8) for i in range(3)]
    src = ListSource(imgs)
    out = tmp_path / "sbs.mp4"
    run(src, open_sink(str(out), src.info, side_by_side=True), open_sink(str(tmp_path / "png"), src.info, side_by_side=True))
    video = read_video(out)
    assert video["sizes"] == [(22, 66)] * 3  # 33*2 wide, height padded to even for yuv420p
    png = cv2.imread(str(tmp_path / "png" / "frame_000002.png"))
    assert png.shape == (21, 66, 3)
    assert (png[:, :33] == 20).all()  # left: the NIR frame in gray


def test_resolution_change_mid_stream(tmp_path):
    sizes = [(48, 64)] * 3 + [(60, 80)] * 3 + [(48, 64)] * 2
    src = ListSource([np.full(s, 50 + 10 * i, np.uint8) for i, s in enumerate(sizes)])
    summary = run(src, open_sink(str(tmp_path / "out.mp4"), src.info), open_sink(str(tmp_path / "png"), src.info))
    assert summary["frames_out"] == 8 and summary["resolution_changes"] == 2
    video = read_video(tmp_path / "out.mp4")
    assert video["sizes"] == [(48, 64)] * 8  # one H.264 stream, one size
    assert cv2.imread(str(tmp_path / "png" / "frame_000004.png")).shape == (60, 80, 3)


@pytest.mark.parametrize("spec,needle", [("out.txt", "unknown output type"), ("afile/out.mp4", "cannot create its folder")])
def test_bad_sinks(tmp_path, monkeypatch, spec, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file, not a folder")
    src = ListSource([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InputError, match=needle):
        open_sink(spec, src.info)


def test_preview_without_a_display_is_disabled_not_fatal(monkeypatch, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    src = ListSource([np.zeros((8, 8), np.uint8)] * 2)
    preview = open_sink("preview:", src.info)
    summary = run(src, preview, open_sink(str(tmp_path / "png"), src.info))
    assert not preview.enabled and summary["frames_out"] == 2


def test_video_keeps_colours(tmp_path):
    """Saturated and mid-tone patches come back from the H.264 file with their colours
    (the sink converts RGB to YUV 4:2:0 itself; a wrong matrix or channel order shows here)."""
    colours = [(200, 30, 30), (30, 180, 40), (40, 60, 210), (128, 128, 128), (230, 200, 60), (20, 20, 20)]
    image = np.zeros((64, 96, 3), np.uint8)
    for i, c in enumerate(colours):
        image[(i // 3) * 32:(i // 3 + 1) * 32, (i % 3) * 32:(i % 3 + 1) * 32] = c

    class ColourBackend(StubBackend):
        def infer_uint8(self, frames):
            return np.repeat(image[None], len(frames), axis=0)

    src = ListSource([np.zeros((64, 96), np.uint8)] * 3)
    Engine(src, [open_sink(str(tmp_path / "c.mp4"), src.info, crf=0)], ColourBackend()).run()
    import av

    with av.open(str(tmp_path / "c.mp4")) as f:
        decoded = [vf.to_ndarray(format="rgb24") for vf in f.decode(video=0)]
    assert len(decoded) == 3
    for i, c in enumerate(colours):
        patch = decoded[1][(i // 3) * 32 + 8:(i // 3 + 1) * 32 - 8, (i % 3) * 32 + 8:(i % 3 + 1) * 32 - 8]
        assert np.abs(patch.reshape(-1, 3).mean(axis=0) - np.array(c)).max() < 4, (c, patch.reshape(-1, 3).mean(axis=0))
