"""--start / --end / --duration: a time range of a recording, from 0 in the output."""
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.io.specs import parse_time
from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.runtime.engine import Engine
from tests.io.media import StubBackend, make_clip, read_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("range") / "in.mp4"
    make_clip(path, [40 * i for i in range(250)], audio_packets=80)  # 10 s, a frame every 40 ms; sound to 10.24 s
    return path


@pytest.mark.parametrize("start, end, first", [(1.0, 2.0, 25), (4.5, None, 113), (None, 0.5, 0), (3.3, 3.5, 83)])
def test_a_range_gives_its_frames_and_sound_from_zero(tmp_path, clip, start, end, first):
    src = open_source(str(clip), start=start, end=end)
    last = 249 if end is None else int(np.ceil(end / 0.04 - 1e-9)) - 1  # frames at 40 ms steps before end
    n = last - first + 1
    assert src.info.frames == pytest.approx(n, abs=1)  # the progress bar's total
    summary = Engine(src, [open_sink(str(tmp_path / "out.mp4"), src.info)], StubBackend()).run()
    out = read_video(tmp_path / "out.mp4")
    assert summary["frames_out"] == n and out["times"] == pytest.approx([0.04 * i for i in range(n)], abs=1e-6)
    lefts = [int(np.median(img[:, :20, 0])) for img in out["left"]]  # frame i shows 8 * (i % 30)
    assert lefts == pytest.approx([8 * (i % 30) for i in range(first, last + 1)], abs=4)
    t0 = first * 0.04
    source_audio = read_video(clip)["audio"]
    kept = [(round(t - t0, 4), data) for t, data in source_audio if t >= t0 - 1e-6 and (end is None or t < end - 1e-6)]
    if start is None:  # from the beginning: the encoder's priming packet before 0 stays, as without a range
        kept = [(round(t, 4), data) for t, data in source_audio if end is None or t < end - 1e-6]
    assert [(round(t, 4), data) for t, data in out["audio"]] == kept and kept


def test_ranges_that_hold_no_frames_are_clear_errors(clip):
    with pytest.raises(InputError, match=r"in.mp4: --start 12 s is past its end \(10\.\d+ s\)"):
        open_source(str(clip), start=12.0)
    src = open_source(str(clip), start=3.301, end=3.31)
    with pytest.raises(InputError, match=r"in.mp4: no frames from 3.301 s to 3.31 s; expected a range that holds at least one frame"):
        list(src)


def test_times_on_the_command_line(tmp_path, clip, capsys):
    def colorize(*args):
        code = main(["colorize", *map(str, args), "--model", "lite", "--threads", "1", "--workers", "1", "--no-progress"])
        return code, capsys.readouterr().err

    assert [parse_time(t, "--start") for t in ("90", "90.5", "1:30", "0:01:30.5", "1:02:03")] == [90, 90.5, 90, 90.5, 3723]
    for bad in ("-1", "1:75", "1::2", "abc", "1e3", "nan", ""):
        with pytest.raises(InputError, match="expected a time such as 90"):
            parse_time(bad, "--start")
    code, err = colorize(clip, "-o", tmp_path / "a.mp4", "--start", "0:02", "--duration", "1.2")
    assert code == 0 and len(read_video(tmp_path / "a.mp4")["times"]) == 30, err
    code, err = colorize(clip, "-o", tmp_path / "a.mp4", "--start", "0:02", "--duration", "1.2", "--skip-done")
    assert code == 0 and "was finished from it: 30 frames" in err, err  # recorded by the run before
    for args, needle in ((["--end", "3", "--duration", "1"], "--end and --duration: expected one of them"),
                         (["--start", "5", "--end", "2"], "--end 2: expected a time after --start (5 s)"),
                         (["--duration", "0"], "--duration 0: expected a positive time")):
        code, err = colorize(clip, "-o", tmp_path / "b.mp4", *args)
        assert code == 2 and needle in err and not (tmp_path / "b.mp4").exists(), err
    code, err = colorize("synthetic:64x48@25:10", "-o", tmp_path / "c.mp4", "--start", "1")
    assert code == 2 and "--start / --end / --duration: source synthetic:64x48@25:10 is not a video file" in err


def write_ts(path, frames: int, gop: int, audio: bool = False) -> None:
    """An MPEG-TS clip of frames at 25 FPS (frame i shows 8 * (i % 30)), a key frame every
    ``gop``; with ``audio``, AAC at 8 kHz along all of it."""
    import av
    import cv2
    from fractions import Fraction

    from tests.io.media import frame_image

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.gop_size = gop
        a = c.add_stream("aac", rate=8000) if audio else None
        if a is not None:
            a.layout = "mono"
        per_frame = 8000 // 25
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(cv2.cvtColor(frame_image(i, 48, 64), cv2.COLOR_GRAY2RGB), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for pk in s.encode(f):
                c.mux(pk)
            if a is not None:
                wave = (0.2 * np.sin(np.arange(i * per_frame, (i + 1) * per_frame) * 0.3)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(wave, format=a.codec_context.format.name, layout="mono")
                af.sample_rate, af.pts = 8000, i * per_frame
                for pk in a.encode(af):
                    c.mux(pk)
        for stream in (s, a):
            for pk in (stream.encode() if stream is not None else []):
                c.mux(pk)


def test_mpeg_ts_ranges_start_where_asked(tmp_path):
    """MPEG-TS seeks to a byte position, not a key frame: its decoder then waits for the next
    key frame, so the seek is made again earlier until reading begins before the start."""
    import av

    path = tmp_path / "gop.ts"
    write_ts(path, 250, gop=25)  # a key frame a second
    with av.open(str(path)) as c:
        assert sum(p.is_keyframe for p in c.demux(video=0)) >= 10  # (x264 may add one at a scene change)
    for start, end, first in ((4.5, 5.5, 113), (7.3, 8.3, 183), (0.5, 1.0, 13)):
        src = open_source(str(path), start=start, end=end)
        frames = list(src)
        n = int(np.ceil(end / 0.04 - 1e-9)) - first
        assert [int(np.median(f.image[:, :20])) for f in frames] == pytest.approx([8 * (i % 30) for i in range(first, first + n)], abs=4)
        assert float(frames[0].pts * frames[0].time_base) - src.zero == pytest.approx(first * 0.04, abs=1e-6)
    # one key frame only, at the start: every seek finds nothing to decode, so it reads from the beginning
    write_ts(tmp_path / "one-key.ts", 150, gop=1000)
    frames = list(open_source(str(tmp_path / "one-key.ts"), start=4.5, end=5.5))
    assert [int(np.median(f.image[:, :20])) for f in frames] == pytest.approx([8 * (i % 30) for i in range(113, 138)], abs=4)


def test_a_range_read_again_from_the_beginning_with_sound_cut_into_pieces(tmp_path):
    # one key frame: the range is read from the beginning, through a second opening of the file;
    # the pieces opened after it take their sound from the file's streams (it crashed once)
    write_ts(tmp_path / "cam.ts", 200, gop=1000, audio=True)
    src = open_source(str(tmp_path / "cam.ts"), start=4.5, end=6.5)
    summary = Engine(src, [open_sink(str(tmp_path / "out.mp4"), src.info, segment=1.0)], StubBackend()).run()
    assert summary["frames_out"] == 50 and len(summary["pieces"]) == 2
    pieces = [read_video(tmp_path / f"out_{k:03d}.mp4") for k in range(2)]
    assert [len(p["times"]) for p in pieces] == [25, 25] and all(p["audio"] for p in pieces)
