"""Sinks through the engine: video files keep timestamps and audio, folders keep names and sizes."""
import time

import av
import cv2
import numpy as np
import pytest

from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.io.base import SourceInfo
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
    # x264 writes the threads it used into the stream (an SEI message); at 320x240 it may use 2
    # (at 64x48 it uses 1 whatever it is told), so 1 and 2 both show whether the option got there
    for threads in (1, 2):
        src = open_source("synthetic:320x240@25:6")
        sink = open_sink(str(tmp_path / f"out{threads}.mp4"), src.info, threads=threads)
        assert sink.options["threads"] == str(threads)
        run(src, sink)
        assert len(read_video(tmp_path / f"out{threads}.mp4")["times"]) == 6
        assert f" threads={threads} ".encode() in (tmp_path / f"out{threads}.mp4").read_bytes()
    assert "threads" not in open_sink(str(tmp_path / "other.mp4"), src.info).options  # x264 chooses by default


def test_preset_reaches_x264_and_an_unknown_one_is_refused(tmp_path):
    # x264 writes its settings into the stream (an SEI message): ultrafast turns CABAC off
    for preset, cabac in (("ultrafast", b"cabac=0"), ("veryfast", b"cabac=1")):
        src = open_source("synthetic:64x48@25:4")
        sink = open_sink(str(tmp_path / f"{preset}.mp4"), src.info, preset=preset, crf=23)
        assert sink.encoder == f"libx264 {preset} crf 23"
        run(src, sink)
        data = (tmp_path / f"{preset}.mp4").read_bytes()
        assert b"x264 - core" in data and cabac in data
    assert open_sink(str(tmp_path / "t.mp4"), src.info, threads=1).encoder == "libx264 veryfast crf 20, 1 thread"
    with pytest.raises(InputError, match=r"output .*sub/x\.mp4: x264 preset 'quick' unknown; expected one of: ultrafast, superfast"):
        open_sink(str(tmp_path / "sub" / "x.mp4"), src.info, preset="quick")
    assert not (tmp_path / "sub").exists()  # refused before anything was created


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
    assert "preview window (disabled: no display)" in summary["sinks"]  # the closing line does not claim a window


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


def test_image_names_that_meet_are_kept_apart(tmp_path):
    """f1.png and f1.jpg, cam1/0001.png and cam2/0001.png: one PNG each, none overwritten."""
    src_dir = tmp_path / "nir"
    (src_dir / "cam1").mkdir(parents=True)
    (src_dir / "cam2").mkdir()
    (src_dir / "cam10").mkdir()
    values = {"f1.png": 10, "f1.jpg": 60, "f2.png": 110, "cam1/0001.png": 20, "cam1/0002.png": 30, "cam2/0001.png": 40, "cam10/0001.png": 50}
    for name, v in values.items():
        cv2.imwrite(str(src_dir / name), np.full((24, 32), v, np.uint8))
    src = open_source(str(src_dir))
    summary = run(src, open_sink(str(tmp_path / "out"), src.info))
    assert summary["frames_out"] == 3
    written = {p.name: int(np.median(cv2.imread(str(p))[:, :, 2])) for p in (tmp_path / "out").iterdir()}
    assert written == pytest.approx({"f1_png.png": 10, "f1_jpg.png": 60, "f2.png": 110}, abs=2)  # red = the stub's NIR copy

    src = open_source(str(src_dir / "*" / "0*.png"))  # a glob across folders: in path order
    assert [f.name for f in src] == ["cam1/0001.png", "cam1/0002.png", "cam2/0001.png", "cam10/0001.png"]
    src = open_source(str(src_dir / "*" / "0*.png"))
    summary = run(src, open_sink(str(tmp_path / "cams"), src.info))
    assert summary["frames_out"] == 4
    for name in ("cam1/0001.png", "cam1/0002.png", "cam2/0001.png", "cam10/0001.png"):
        assert int(np.median(cv2.imread(str(tmp_path / "cams" / name))[:, :, 2])) == values[name]


def test_png_names_are_distinct():
    from nirvision.io.image_sink import png_names

    names = ["a.png", "A.PNG", "f1.jpg", "f1.png", "f1_jpg.png", "x/y.tif", "x/y.png", "z.png"]
    out = png_names(names)
    assert len({p.casefold() for p in out.values()}) == len(names)
    assert out["z.png"] == "z.png" and out["f1_jpg.png"] == "f1_jpg.png"  # names that meet nothing stay as they are
    assert out["f1.jpg"] == "f1_jpg_2.png" and out["f1.png"] == "f1_png.png"
    assert out["x/y.tif"] == "x/y_tif.png" and out["x/y.png"] == "x/y_png.png"


def test_image_output_that_would_overwrite_a_source_image_is_refused(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"n{i}.png"), np.full((8, 8), 10 * i, np.uint8))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    src = open_source(str(folder / "*.png"))
    with pytest.raises(InputError, match=r"would overwrite the source image .*n0\.png"):
        open_sink(str(folder), src.info)
    (tmp_path / "more").mkdir()
    cv2.imwrite(str(tmp_path / "more" / "m.png"), np.full((8, 8), 50, np.uint8))
    with pytest.raises(InputError, match="would overwrite the source image"):  # across folders: names are imgs/n0.png, more/m.png
        open_sink(str(tmp_path), open_source(str(tmp_path / "*" / "*.png")).info)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    cv2.imwrite(str(folder / "photo.jpg"), np.full((8, 8), 99, np.uint8))
    src = open_source(str(folder / "*.jpg"))  # JPEG in, PNG out: the same folder overwrites nothing
    assert run(src, open_sink(str(folder), src.info))["frames_out"] == 1
    assert (folder / "photo.png").exists() and {p.name: p.read_bytes() for p in folder.glob("n*.png")} == before


def test_audio_the_container_cannot_hold_is_encoded_as_aac(tmp_path, caplog):
    import av

    make_clip(tmp_path / "in.mkv", [40 * i for i in range(8)], audio_packets=8, audio_codec="flac")
    assert read_video(tmp_path / "in.mkv")["audio"]
    src = open_source(str(tmp_path / "in.mkv"))
    with caplog.at_level("INFO"):
        summary = run(src, open_sink(str(tmp_path / "out.mov"), src.info))
    out = read_video(tmp_path / "out.mov")
    assert summary["frames_out"] == 8 and out["times"] == pytest.approx([0.04 * i for i in range(8)], abs=1e-6)
    with av.open(str(tmp_path / "out.mov")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    assert out["audio"] and out["audio"][0][0] == pytest.approx(-1024 / 8000, abs=0.003)  # AAC's priming frame before 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("flac" in r.getMessage() and "AAC" in r.getMessage() for r in caplog.records)


def test_output_starts_at_zero_with_audio_in_step(tmp_path):
    """A clip cut from 600 s into a stream: the output starts at 0, frames and audio keep
    their relative times (before, the MP4 reported 600 s more than it holds)."""
    pts = [600000 + p for p in (0, 40, 80, 200, 240, 500)]
    make_clip(tmp_path / "in.mkv", pts, audio_packets=8, audio_start_ms=600000)
    a = read_video(tmp_path / "in.mkv")
    src = open_source(str(tmp_path / "in.mkv"))
    run(src, open_sink(str(tmp_path / "out.mp4"), src.info), open_sink(str(tmp_path / "out.mkv"), src.info))
    for name in ("out.mp4", "out.mkv"):
        b = read_video(tmp_path / name)
        assert b["times"] == pytest.approx([(p - 600000) / 1000 for p in pts], abs=1e-3), name
        # the same audio from the first frame on, 600 s earlier (AAC's priming packet sat before it)
        kept = [(t - 600.0, data) for t, data in a["audio"] if t >= 600.0]
        assert [d for _, d in b["audio"]] == [d for _, d in kept], name
        assert [t for t, _ in b["audio"]] == pytest.approx([t for t, _ in kept], abs=1e-3), name
        import av

        with av.open(str(tmp_path / name)) as c:
            assert c.duration / 1e6 < 5  # not 600 s and more



def _tags(path) -> dict:
    with av.open(str(path)) as c:
        return dict(c.metadata)


def test_outputs_keep_the_recordings_tags_and_time_and_say_colours_are_predicted(tmp_path, tiny_model):
    from nirvision.cli import main

    tags = {"creation_time": "2026-03-04T05:06:07.000000Z", "title": "Gate cam", "location": "+48.8577+002.2950/", "encoder": "SomeNVR 1.0"}
    make_clip(tmp_path / "in.mp4", list(range(0, 4000, 200)), tags=tags)
    assert main(["colorize", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "all.mkv"), "-o", str(tmp_path / "part.mp4"), "--model", str(tiny_model),
                 "--threads", "1", "--no-progress"]) == 0
    assert main(["colorize", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "range.mp4"), "--start", "2.0", "--model", str(tiny_model),
                 "--threads", "1", "--no-progress"]) == 0
    assert main(["colorize", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "piece.mp4"), "--segment", "1", "--model", str(tiny_model),
                 "--threads", "1", "--no-progress"]) == 0
    whole = _tags(tmp_path / "all.mkv")
    assert whole["title"] == "Gate cam" and whole["LOCATION"] == "+48.8577+002.2950/"
    assert whole["creation_time"].startswith("2026-03-04T05:06:07")
    assert "SomeNVR" not in str(whole.values())  # the writer's own encoder tag, not the source's
    assert "colours are predicted" in whole["COMMENT"]
    assert _tags(tmp_path / "part.mp4")["creation_time"] == "2026-03-04T05:06:07.000000Z"
    assert _tags(tmp_path / "range.mp4")["creation_time"] == "2026-03-04T05:06:09.000000Z"  # 2 s later: its first frame
    pieces = [_tags(tmp_path / f"piece_{i:03d}.mp4")["creation_time"] for i in range(4)]
    assert pieces == [f"2026-03-04T05:06:{s:02d}.000000Z" for s in (7, 8, 9, 10)]


def test_live_outputs_say_when_they_were_recorded(tmp_path):
    from datetime import datetime, timedelta, timezone

    from nirvision.io.tags import output_tags

    info = SourceInfo(kind="rtsp", description="rtsp://cam/x", live=True, tags={"title": "ignored for live"})
    before = datetime.now(timezone.utc)
    tags = output_tags(info, first_time=123.0, t_read=time.perf_counter() - 2.0)
    after = datetime.now(timezone.utc)
    when = datetime.fromisoformat(tags["creation_time"].replace("Z", "+00:00"))
    # when the frame was read (2 s before the call, however long the call took), not when it was written
    tolerance = timedelta(milliseconds=5)  # the wall clock and perf_counter() read a few microseconds apart
    assert before - timedelta(seconds=2) - tolerance <= when <= after - timedelta(seconds=2) + tolerance
    source = SourceInfo(kind="file", description="x.mp4", live=False, tags={"COMMENT": "shift B"})
    comment = output_tags(source, 1.0)["COMMENT"]
    assert comment.startswith("colorized from near-infrared by nirvision") and comment.endswith("; shift B")  # the note first
    assert "creation_time" not in output_tags(source, 1.0)  # a source without one gets none


@pytest.mark.parametrize("text,expected", [
    ("2026-03-04T05:06:07.000000Z", "2026-03-04T05:06:07+00:00"),
    ("2026-03-04 05:06:07", "2026-03-04T05:06:07+00:00"),
    ("2026-03-04T07:06:07+02:00", "2026-03-04T05:06:07+00:00"),
    ("1904-01-01T00:00:00.000000Z", None),  # QuickTime's zero: a camera without a clock
    ("yesterday", None),
    (None, None),
])
def test_creation_time_tags_read(text, expected):
    from nirvision.io.tags import parse_creation_time

    got = parse_creation_time(text)
    assert (got.isoformat() if got else None) == expected


def test_tags_that_an_output_cannot_hold_are_named_and_odd_ones_left_out(tmp_path, tiny_model, caplog):
    from nirvision.cli import main

    tags = {"creation_time": "9999-12-31T23:59:59Z", "make": "ACME", "model": "N1", "title": "t", "timecode": "01:00:00:00",
            "comment": "x" * 70000}
    make_clip(tmp_path / "in.mkv", list(range(0, 2000, 200)), tags=tags)
    with caplog.at_level("WARNING", logger="nirvision.io.video_sink"):
        assert main(["colorize", str(tmp_path / "in.mkv"), "-o", str(tmp_path / "o.mp4"), "-o", str(tmp_path / "o.mov"), "-o", str(tmp_path / "o.mkv"),
                     "--start", "1", "--model", str(tiny_model), "--threads", "1", "--no-progress"]) == 0  # a date past 9999 + 1 s: dropped, no crash
    lost = [r.getMessage() for r in caplog.records if "cannot be kept" in r.getMessage()]
    assert len(lost) == 1 and "o.mp4" in lost[0] and "make, model" in lost[0].lower()  # MOV holds make and model; MKV everything
    mp4, mov, mkv = (_tags(tmp_path / f"o.{x}") for x in ("mp4", "mov", "mkv"))
    assert mov["make"] == "ACME" and mkv["MODEL"] == "N1" and "creation_time" not in mkv
    for out in (mp4, mov, mkv):
        comment = next(v for k, v in out.items() if k.lower() == "comment")
        assert comment.startswith("colorized from near-infrared by nirvision") and len(comment) < 5000  # the note first; the source's cut
        assert not any(k.lower() == "timecode" for k in out)
    with av.open(str(tmp_path / "o.mov")) as c:
        assert [s.type for s in c.streams] == ["video"]  # no timecode track


def test_outputs_say_how_their_colours_are_coded(tmp_path):
    """Frames go to YUV by BT.601 in limited range: the stream says so, and a reader that
    follows the tags (as players do, HD sizes included) gets the colours back."""
    from nirvision.io.base import Frame

    src = open_source("synthetic:1280x720@25:3")
    colour = np.zeros((720, 1280, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 200, 120, 40
    sink = open_sink(str(tmp_path / "out.mp4"), src.info)
    for i in range(3):
        sink.write(Frame(np.zeros((720, 1280), np.uint8), index=i, pts=i, time_base=src.info.time_base), colour)
    sink.close()
    with av.open(str(tmp_path / "out.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc) == (6, 1, 1, 1)  # smpte170m, tv, bt709, bt709
        frame = next(c.decode(video=0))
        assert frame.colorspace == 6
        assert np.abs(frame.to_ndarray(format="rgb24").astype(int) - colour).max() <= 3


@pytest.mark.parametrize("pts_ms,duration", [([0, 2000, 4000, 6000], 8.0),  # 0.5 fps
                                              ([0, 40, 80, 3_600_000, 3_600_040, 3_600_080], 3600.12)])  # a motion recording's hour gap
def test_the_last_picture_lasts_one_frame_not_the_files_average(tmp_path, pts_ms, duration):
    make_clip(tmp_path / "in.mkv", pts_ms)
    for name in ("out.mp4", "out.mkv"):
        src = open_source(str(tmp_path / "in.mkv"))
        run(src, open_sink(str(tmp_path / name), src.info))
        with av.open(str(tmp_path / name)) as c:
            assert c.duration / 1e6 == pytest.approx(duration, abs=0.02), name
        assert read_video(tmp_path / name)["times"] == pytest.approx([p / 1000 for p in pts_ms], abs=1e-3)


@pytest.mark.parametrize("name", ["night.2026.12.01/", "run.1/", "frames.png/"])
def test_an_output_with_a_trailing_slash_is_a_folder_whatever_its_name(tmp_path, name):
    src = open_source("synthetic:32x24@5:2")
    spec = f"{tmp_path}/{name}"  # as typed: a Path would drop the slash
    run(src, open_sink(spec, src.info))
    assert (tmp_path / name).is_dir() and len(list((tmp_path / name).glob("*.png"))) == 2


def test_an_unknown_type_suggests_the_slash_of_a_folder(tmp_path):
    src = open_source("synthetic:32x24@5:2")
    with pytest.raises(InputError, match=r"unknown output type '\.1'.*end it with / for a folder of that name: .*run\.1/"):
        open_sink(str(tmp_path / "run.1"), src.info)
