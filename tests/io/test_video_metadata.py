"""What a recorded video says besides its pictures: rotation, pixel aspect, AVI times, streams, scan type."""
import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from nirvision.cli.batch import batch_inputs
from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.io.sheet_sink import ContactSheetSink
from nirvision.runtime.engine import Engine
from tests.io.media import ListSource, StubBackend, frame_image, make_clip, make_video, read_video, rotate_mp4


def run(source, *sinks):
    return Engine(source, list(sinks), StubBackend()).run()


def messages(caplog, level, needle):
    return [r.getMessage() for r in caplog.records if r.levelno == level and needle in r.getMessage()]


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_a_rotated_phone_video_is_read_upright_and_written_upright(tmp_path, caplog, rotation):
    path = tmp_path / "phone.mp4"
    make_clip(path, [40 * i for i in range(50)])  # 64x48, 2 s
    rotate_mp4(path, rotation)
    turned = rotation % 180 != 0
    shown = (64, 48) if turned else (48, 64)  # (height, width) as players show it

    with caplog.at_level(logging.INFO, logger="nirvision.io.file_source"):
        src = open_source(str(path))
    assert (src.info.height, src.info.width) == shown
    said = messages(caplog, logging.INFO, "as the file's display matrix says")
    assert len(said) == 1 and str(path) in said[0] and ("90 degrees" if turned else "180 degrees") in said[0]

    out, sbs, sheet = tmp_path / "out.mp4", tmp_path / "sbs.mkv", ContactSheetSink(tmp_path / "out_sheet.png", src.info)
    summary = run(src, open_sink(str(out), src.info), open_sink(str(sbs), src.info, side_by_side=True),
                  open_sink(str(tmp_path / "cut.mp4"), src.info, segment=1.0), sheet)
    assert summary["frames_out"] == 50
    video = read_video(out)
    assert video["sizes"] == [shown] * 50
    # upright: frame 10 as drawn, turned as the matrix says (the stub's red is the NIR value)
    assert np.abs(video["left"][10][:, :, 0].astype(int) - np.rot90(frame_image(10, 48, 64), rotation // 90)).mean() < 4
    with av.open(str(out)) as done:
        assert next(done.decode(video=0)).rotation == 0  # no display matrix: it plays as written
    assert read_video(sbs)["sizes"] == [(shown[0], 2 * shown[1])] * 50
    pieces = sorted(tmp_path.glob("cut_*.mp4"))
    assert len(pieces) == 2 and all(set(read_video(p)["sizes"]) == {shown} for p in pieces)
    assert (tmp_path / "out_sheet.png").exists() and len(sheet.kept) == 6 and all(nir.shape == shown for _, nir, _, _ in sheet.kept)

    frames = list(open_source(str(path), start=0.4, end=0.8))  # a range: the same upright frames
    assert [round(f.time, 3) for f in frames] == [round(0.4 + 0.04 * k, 3) for k in range(10)]
    assert all(f.image.shape == shown for f in frames)


def test_non_square_pixels_reach_the_output(tmp_path):
    path = tmp_path / "pal.mp4"
    make_video(path, 3, size=(720, 576), sample_aspect_ratio=Fraction(4, 3))  # PAL 16:9
    src = open_source(str(path))
    assert src.info.sample_aspect_ratio == Fraction(4, 3)
    run(src, open_sink(str(tmp_path / "out.mp4"), src.info), open_sink(str(tmp_path / "sbs.mkv"), src.info, side_by_side=True))
    for name, width in (("out.mp4", 720), ("sbs.mkv", 1440)):
        with av.open(str(tmp_path / name)) as done:
            stream = done.streams.video[0]
            assert (stream.width, stream.sample_aspect_ratio) == (width, Fraction(4, 3)), name  # side by side: the same pixels

    rotate_mp4(path, -90)  # turned upright, the pixels are as tall as they were wide
    src = open_source(str(path))
    assert (src.info.width, src.info.height, src.info.sample_aspect_ratio) == (576, 720, Fraction(3, 4))
    src.close()


@pytest.mark.parametrize("name", ["bf.avi", "bf.h264", "bf.mkv", "bf.mp4"])
def test_b_frames_keep_exact_times_whatever_the_container(tmp_path, name):
    """AVI keeps times in decoding order only: frames that B-frames reorder come out of the
    decoder with times out of order, and must still be 0, 1/25, 2/25 ..."""
    path = tmp_path / name
    make_video(path, 20, options={"bf": "2"})
    src = open_source(str(path))
    run(src, open_sink(str(tmp_path / "out.mp4"), src.info))
    video = read_video(tmp_path / "out.mp4")
    assert video["times"] == pytest.approx([i / 25 for i in range(20)], abs=1e-6)
    # each picture in its place: frame i is drawn with 8 i on its left
    assert [int(np.median(img[:, :20, 0])) for img in video["left"]] == pytest.approx([8 * i for i in range(20)], abs=4)
    frames = list(open_source(str(path), start=0.4, end=0.6))
    assert [round(f.time, 6) for f in frames] == [0.4, 0.44, 0.48, 0.52, 0.56]


def test_an_audio_only_file_is_said_to_hold_its_audio_stream(tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        stream.layout = "mono"
        fmt = stream.codec_context.format.name
        for k in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format=fmt, layout="mono")
            frame.sample_rate, frame.pts = 8000, 1024 * k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(InputError, match=r"voice\.m4a: holds no video frames \(no video stream with data, 1 other stream\(s\)\)"):
        open_source(str(path))


def test_a_second_video_stream_is_named_in_a_warning(tmp_path, caplog):
    path = tmp_path / "nvr.mkv"
    make_video(path, 5, streams=2)  # main 64x48 and sub 32x24 stream
    with caplog.at_level(logging.WARNING, logger="nirvision.io.file_source"):
        frames = list(open_source(str(path)))
    assert len(frames) == 5 and frames[0].image.shape == (48, 64)
    said = messages(caplog, logging.WARNING, "video streams")
    assert said == [f"video file {path}: holds 2 video streams; reading only the first (stream #0, 64x48 h264)"]


def test_interlaced_video_is_said_once_not_to_be_deinterlaced(tmp_path, caplog):
    path = tmp_path / "tv.mp4"
    make_video(path, 6, options={"x264-params": "interlaced=1"})
    with caplog.at_level(logging.WARNING, logger="nirvision.io.file_source"):
        assert len(list(open_source(str(path)))) == 6
    said = messages(caplog, logging.WARNING, "interlaced")
    assert len(said) == 1 and str(path) in said[0] and "not deinterlaced" in said[0]
    caplog.clear()
    make_video(tmp_path / "progressive.mp4", 3)
    with caplog.at_level(logging.WARNING, logger="nirvision.io.file_source"):
        list(open_source(str(tmp_path / "progressive.mp4")))
    assert not messages(caplog, logging.WARNING, "interlaced")


def test_an_odd_size_is_said_once_to_be_padded(tmp_path, caplog):
    for run_ in (1, 2):  # once per output: a second run in the same process says it again
        caplog.clear()
        src = ListSource([np.full((25, 33), 10 * i, np.uint8) for i in range(10)], fps=5)  # two pieces of 1 s
        with caplog.at_level(logging.INFO, logger="nirvision.io.video_sink"):
            run(src, open_sink(str(tmp_path / f"odd{run_}.mp4"), src.info, segment=1.0))
        pieces = sorted(tmp_path.glob(f"odd{run_}_*.mp4"))
        assert len(pieces) == 2 and all(set(read_video(p)["sizes"]) == {(26, 34)} for p in pieces)
        said = messages(caplog, logging.WARNING, "padded")  # shown without -v
        assert len(said) == 1 and "frames are 33x25, padded to 34x26 by repeating the last column and row" in said[0]


def test_raw_h264_and_hevc_files_are_videos_of_a_batch(tmp_path):
    make_video(tmp_path / "raw.h264", 3)
    names = ["a.mp4", "cam1.h264", "cam2.264", "cam3.h265", "cam4.265", "cam5.hevc"]
    folder = tmp_path / "in"
    folder.mkdir()
    for name in names:  # the batch goes by the name; FFmpeg tells the codec
        (folder / name).write_bytes((tmp_path / "raw.h264").read_bytes())
    assert [p.name for p in batch_inputs([str(folder)])] == names
