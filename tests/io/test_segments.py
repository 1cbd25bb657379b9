"""``--segment``: a recording cut into files, by the wall clock (live) or the video's clock."""
import re
from datetime import datetime
from fractions import Fraction

import numpy as np
import pytest

from nirvision.cli import main
from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.io.base import Frame, SourceInfo
from nirvision.io.segment_sink import SegmentSink, parse_duration
from nirvision.runtime.engine import Engine
from tests.io.media import StubBackend, make_clip, read_video


def test_recorded_video_in_pieces_keeps_every_frame_and_audio_packet(tmp_path):
    pts = [40 * i for i in range(100)]  # 4 s
    make_clip(tmp_path / "in.mp4", pts, audio_packets=34)
    src = open_source(str(tmp_path / "in.mp4"))
    whole = open_source(str(tmp_path / "in.mp4"))
    Engine(whole, [open_sink(str(tmp_path / "whole.mp4"), whole.info)], StubBackend()).run()
    summary = Engine(src, [open_sink(str(tmp_path / "out" / "cam.mp4"), src.info, segment=1.0)], StubBackend()).run()

    names = [f"cam_{k:03d}.mp4" for k in range(4)]
    assert summary["pieces"] == [str(tmp_path / "out" / n) for n in names]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    pieces = [read_video(tmp_path / "out" / n) for n in names]
    for piece in pieces:  # each a video of its own: 25 frames from 0, every 40 ms
        assert piece["times"] == pytest.approx([0.04 * i for i in range(25)], abs=1e-6)
    # the pictures in order: the stub's red channel is the NIR value, 8 * (i % 30) on the left
    lefts = [int(np.median(img[:, :20, 0])) for piece in pieces for img in piece["left"]]
    assert lefts == pytest.approx([8 * (i % 30) for i in range(100)], abs=4)
    # every audio packet once, in the piece its time falls in, timed from that piece's start
    reference = read_video(tmp_path / "whole.mp4")["audio"]
    assert len(reference) >= 30
    assert [data for piece in pieces for _, data in piece["audio"]] == [data for _, data in reference]
    # (AAC's first packet starts before 0, its priming: in the first piece; the sound that
    # outlasts the last picture: in the last)
    for k, piece in enumerate(pieces):
        assert piece["audio"] and all(-0.2 < t and (t < 1.0 or k == 3) for t, _ in piece["audio"])
        assert [round(t + k, 4) for t, _ in piece["audio"]] == [round(t, 4) for t, _ in reference if min(3, max(0, int(t // 1))) == k]


class Piece:
    """Records what a piece of the recording receives."""

    def __init__(self, path, info, log):
        self.path, self.frames, self.audio, self.closed = path, [], [], False
        self.audio_out = object() if info.audio_stream is not None else None
        log.append(self)

    def write(self, frame, image):
        assert not self.closed
        self.frames.append(frame.index)

    def write_audio(self, packets):
        assert not self.closed
        self.audio.extend(p.pts for p in packets)

    def close(self):
        self.closed = True


class Packet:
    def __init__(self, ms):
        self.pts, self.time_base = ms, Fraction(1, 1000)


def test_live_pieces_start_at_wall_clock_multiples_named_by_their_start(tmp_path):
    start = datetime(2026, 12, 1, 20, 14, 50).timestamp()  # 10 s before a quarter hour
    now = {"t": start}
    info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1), time_base=Fraction(1, 1000), audio_stream=object())
    pieces = []
    sink = SegmentSink(tmp_path / "cam.mp4", info, parse_duration("15m"), open_piece=lambda p, i: Piece(p, i, pieces), clock=lambda: now["t"])
    late = None
    for i in range(40):  # one frame a second of stream and of wall clock, 20:14:50 to 20:15:29
        now["t"] = start + i
        if i == 10:
            late = [Packet(9_500), Packet(10_300)]  # demuxed before frame 10: one sound before the cut, one after
            sink.write_audio(late)
        elif i > 0:
            sink.write_audio([Packet(1000 * i - 500)])
        sink.write(Frame(np.zeros((4, 4), np.uint8), index=i, pts=1000 * i, time_base=Fraction(1, 1000)), np.zeros((4, 4, 3), np.uint8))
    sink.close()
    assert [p.path.name for p in pieces] == ["cam_20261201-201450.mp4", "cam_20261201-201500.mp4"]
    assert pieces[0].frames == list(range(10)) and pieces[1].frames == list(range(10, 40))
    assert pieces[0].audio == [500 + 1000 * k for k in range(9)] + [9_500]  # the late sound before the cut: the piece before
    assert pieces[1].audio == [10_300] + [1000 * k - 500 for k in range(11, 40)]  # every later sound once, in order
    assert all(p.closed for p in pieces) and sink.paths == []  # (the recorder wrote no files)


def test_pieces_never_overwrite_and_durations_are_checked(tmp_path):
    (tmp_path / "cam_000.mp4").write_bytes(b"an earlier run")
    src = open_source("synthetic:64x48@25:30")
    summary = Engine(src, [open_sink(str(tmp_path / "cam.mp4"), src.info, segment=1.0)], StubBackend()).run()
    assert [p.rsplit("/", 1)[-1] for p in summary["pieces"]] == ["cam_000_2.mp4", "cam_001.mp4"]
    assert (tmp_path / "cam_000.mp4").read_bytes() == b"an earlier run"
    assert [len(read_video(tmp_path / n)["times"]) for n in ("cam_000_2.mp4", "cam_001.mp4")] == [25, 5]
    assert [parse_duration(t) for t in ("90", "90s", "1.5m", "2h", " 1 ")] == [90, 90, 90, 7200, 1]
    for bad in ("0.5", "0", "-3", "abc", "15 min", "", "nan"):
        with pytest.raises(InputError, match=re.escape(f"--segment {bad}: expected a duration of at least 1 s")):
            parse_duration(bad)
    assert type(open_sink(str(tmp_path / "pngs"), src.info, segment=60)).__name__ == "ImageFolderSink"  # cuts video files only


def test_segment_on_the_command_line(tmp_path, tiny_model, capsys):
    def colorize(*args):
        code = main(["colorize", *map(str, args), "--model", str(tiny_model), "--threads", "1", "--workers", "1", "--no-progress"])
        return code, capsys.readouterr().err

    code, err = colorize("synthetic:64x48@25:60", "-o", tmp_path / "rec.mkv", "--segment", "1s")
    assert code == 0 and err.rstrip().endswith("(3 files)"), err
    assert [len(read_video(tmp_path / f"rec_{k:03d}.mkv")["times"]) for k in range(3)] == [25, 25, 10]
    code, err = colorize("synthetic:64x48@25:3", "-o", tmp_path / "x.mp4", "--segment", "10ms")
    assert code == 2 and "--segment 10ms: expected a duration" in err and not list(tmp_path.glob("x*"))
    make_clip(tmp_path / "a.mp4", [0, 40])
    code, err = colorize(tmp_path / "a.mp4", "-o", tmp_path / "y.mp4", "--segment", "60", "--skip-done")
    assert code == 2 and "--skip-done with --segment" in err
    code, err = colorize("synthetic:64x48@25:3", "-o", tmp_path / "pngs", "-o", "http://127.0.0.1:0", "--segment", "60")
    assert code == 2 and "--segment 60: cuts video file outputs; expected one (-o NAME.mp4, .mkv or .mov) among:" in err
    code, err = colorize("synthetic:64x48@25:30", "-o", tmp_path / "pngs", "-o", tmp_path / "v.mp4", "-o", "http://127.0.0.1:0", "--segment", "1")
    assert code == 0 and len(list((tmp_path / "pngs").iterdir())) == 30 and sorted(p.name for p in tmp_path.glob("v_*.mp4")) == ["v_000.mp4", "v_001.mp4"], err
    code, err = colorize("synthetic:64x48@25:3", "-o", tmp_path / "z.mp4", "--keep", "3")
    assert code == 2 and "--keep 3: keeps the newest pieces of a recording cut by --segment; expected --segment too" in err
    code, err = colorize(tmp_path / "a.mp4", tmp_path / "a.mp4", "-o", tmp_path / "batch", "--segment", "1m", "--keep", "3")
    assert code == 2 and "--keep 3: deletes old pieces of a live recording" in err and not (tmp_path / "batch").exists()


def test_keep_deletes_the_oldest_pieces_of_a_live_recording_only(tmp_path):
    for name in ("cam_20261130-100000.mp4", "cam_20261130-110000_2.mp4", "cam_notes.mp4", "other_20261130-100000.mp4", "cam_000.mp4"):
        (tmp_path / name).write_bytes(b"x")  # an earlier run's pieces, and files that are not pieces of cam.mp4
    start = datetime(2026, 12, 1, 8, 0, 0).timestamp()
    now = {"t": start}
    info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1), time_base=Fraction(1, 1000))
    pieces = []

    def open_piece(path, i):
        path.write_bytes(b"piece")
        return Piece(path, i, pieces)

    sink = SegmentSink(tmp_path / "cam.mp4", info, 60, keep=2, open_piece=open_piece, clock=lambda: now["t"])
    for i in range(5 * 60):  # five minutes, one frame a second: five pieces
        now["t"] = start + i
        sink.write(Frame(np.zeros((4, 4), np.uint8), index=i, pts=1000 * i, time_base=Fraction(1, 1000)), np.zeros((4, 4, 3), np.uint8))
    sink.close()
    assert len(pieces) == 5 and sink.deleted == 5  # two of the earlier run's, three of this run's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam_000.mp4", "cam_20261201-080300.mp4", "cam_20261201-080400.mp4",
                                                          "cam_notes.mp4", "other_20261130-100000.mp4"]
    recorded = SourceInfo(kind="file", description="f", live=False, fps=Fraction(25), time_base=Fraction(1, 25))
    with pytest.raises(InputError, match="--keep 2: deletes old pieces of a live source's recording around the clock; source f is not live") as err:
        SegmentSink(tmp_path / "f.mp4", recorded, 60, keep=2)
    assert "expected at least 1" not in str(err.value)  # the count is fine: the source is the problem
    with pytest.raises(InputError, match="--keep 0: expected at least 1") as err:
        SegmentSink(tmp_path / "g.mp4", info, 60, keep=0)
    assert "not live" not in str(err.value)


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/St_Johns"])  # offsets of 0, +5:30 and -3:30
def test_live_pieces_follow_the_local_clock(tmp_path, monkeypatch, tz):
    import time as _time

    monkeypatch.setenv("TZ", tz)
    _time.tzset()
    try:
        start = datetime(2026, 12, 1, 8, 59, 50).timestamp()  # local time
        now = {"t": start}
        info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1), time_base=Fraction(1, 1000))
        pieces = []
        sink = SegmentSink(tmp_path / "cam.mp4", info, parse_duration("1h"), open_piece=lambda p, i: Piece(p, i, pieces), clock=lambda: now["t"])
        for i in range(20):
            now["t"] = start + i
            sink.write(Frame(np.zeros((4, 4), np.uint8), index=i, pts=1000 * i, time_base=Fraction(1, 1000)), np.zeros((4, 4, 3), np.uint8))
        sink.close()
        assert [p.path.name for p in pieces] == ["cam_20261201-085950.mp4", "cam_20261201-090000.mp4"]  # cut at 9:00 local
        assert pieces[1].frames[0] == 10
    finally:
        monkeypatch.undo()
        _time.tzset()


def test_live_pieces_when_the_local_clock_goes_back_an_hour(tmp_path, monkeypatch):
    import time as _time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    _time.tzset()
    try:
        start = datetime(2026, 10, 25, 0, 50, tzinfo=__import__("datetime").timezone.utc).timestamp()  # 02:50 CEST
        now = {"t": start}
        info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1, 60), time_base=Fraction(1, 1000))
        pieces = []
        sink = SegmentSink(tmp_path / "cam.mp4", info, parse_duration("15m"), open_piece=lambda p, i: Piece(p, i, pieces), clock=lambda: now["t"])
        for i in range(40):  # a frame a minute: 02:50 CEST ... then 02:00 CET onwards
            now["t"] = start + 60 * i
            sink.write(Frame(np.zeros((4, 4), np.uint8), index=i, pts=60_000 * i, time_base=Fraction(1, 1000)), np.zeros((4, 4, 3), np.uint8))
        sink.close()
        # 02:50-02:59 CEST, then the clock shows 02:00 again (CET): a new piece, none spans the repeated hour
        assert [p.path.name for p in pieces] == ["cam_20261025-025000.mp4", "cam_20261025-020000.mp4", "cam_20261025-021500.mp4"]
        assert [len(p.frames) for p in pieces] == [10, 15, 15]
    finally:
        monkeypatch.undo()
        _time.tzset()


def test_keep_on_a_recorded_video_says_the_source_is_not_live(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "in.mp4", [40 * i for i in range(5)])
    code = main(["colorize", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "k.mp4"), "--segment", "1", "--keep", "2",
                 "--model", str(tiny_model), "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--keep 2: deletes old pieces of a live source's recording" in err and "is not live" in err
    assert "expected at least 1" not in err and not list(tmp_path.glob("k_*.mp4"))


def test_keep_counts_the_piece_being_written_before_its_file_appears(tmp_path):
    """PyAV creates a piece's file at its first frame, after the cut that prunes: the newest N stay, not N + 1."""
    start = datetime(2026, 12, 1, 8, 0, 0).timestamp()
    now = {"t": start}
    info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1), time_base=Fraction(1, 1000))
    pieces = []

    class LatePiece(Piece):
        def write(self, frame, image):
            self.path.write_bytes(b"piece")  # the file appears with the first frame
            super().write(frame, image)

    sink = SegmentSink(tmp_path / "cam.mp4", info, 60, keep=2, open_piece=lambda p, i: LatePiece(p, i, pieces), clock=lambda: now["t"])
    for i in range(5 * 60):
        now["t"] = start + i
        sink.write(Frame(np.zeros((4, 4), np.uint8), index=i, pts=1000 * i, time_base=Fraction(1, 1000)), np.zeros((4, 4, 3), np.uint8))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam_20261201-080300.mp4", "cam_20261201-080400.mp4"]


def test_pieces_of_a_range_that_starts_off_the_second_hold_whole_seconds(tmp_path):
    """Frames from 0.4 s at 25 fps: 1.4 - 0.4 is 0.99999... s in floating point; the first
    1-second piece still holds 25 frames, not 26."""
    info = SourceInfo(kind="test", description="range", live=False, fps=Fraction(25), time_base=Fraction(1, 25), frames=60)
    sink = open_sink(str(tmp_path / "cam.mp4"), info, segment=1.0)
    frame = np.zeros((48, 64), np.uint8)
    rgb = np.zeros((48, 64, 3), np.uint8)
    for i in range(60):
        sink.write(Frame(frame, index=i, pts=10 + i, time_base=Fraction(1, 25)), rgb)
    sink.close()
    assert [len(read_video(tmp_path / f"cam_{k:03d}.mp4")["times"]) for k in range(3)] == [25, 25, 10]
