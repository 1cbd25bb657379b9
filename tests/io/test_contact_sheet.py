"""--contact-sheet: a few frames of each video, NIR beside its colours, as one PNG beside it."""
import re
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.io.base import Frame, SourceInfo
from nirvision.io.sheet_sink import ContactSheetSink, sheet_path, sheets_for
from tests.io.media import make_clip

HEAD, PAD = 22, 4  # nirvision.visual.save_grid's layout


def nir_rows(path, h, w, rows):
    """The NIR column's frames on a sheet: the left-half value of each row (8 * (i % 30))."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (HEAD + rows * (h + PAD) + PAD, 2 * (w + PAD) + PAD)
    top = 36 if h >= 64 else 20  # below the time labels (two lines on a tall enough frame)
    return [int(np.median(img[HEAD + PAD + r * (h + PAD) + top: HEAD + PAD + r * (h + PAD) + h - 2, PAD + 2: PAD + w // 2 - 2]))
            for r in range(rows)]


def test_a_sheet_of_frames_spread_over_each_video_of_a_batch(tmp_path, tiny_model, capsys):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", [40 * i for i in range(50)])
    make_clip(tmp_path / "in" / "b.mp4", [40 * i for i in range(4)])  # shorter than six rows
    code = main(["colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--threads", "1",
                 "--no-progress", "--contact-sheet"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".nirvision-done.json", "a.mp4", "a_sheet.png", "b.mp4", "b_sheet.png"]
    picked = [0, 10, 20, 29, 39, 49]  # six frames from the first to the last
    assert nir_rows(tmp_path / "out" / "a_sheet.png", 48, 64, 6) == pytest.approx([8 * (i % 30) for i in picked], abs=4)
    assert nir_rows(tmp_path / "out" / "b_sheet.png", 48, 64, 4) == pytest.approx([0, 8, 16, 24], abs=4)
    assert sheet_path("rec/cam.mkv").as_posix() == "rec/cam_sheet.png"
    # two videos of one name: a sheet each, not one written over the other
    info = SourceInfo(kind="test", description="x", live=False, fps=Fraction(25), time_base=Fraction(1, 25), frames=10)
    names = [Path(s.path).as_posix() for s in sheets_for(["rec/cam.mp4", "rec/cam.MKV", "rec/other.mov", "rec/pngs"], info)]
    assert names == ["rec/cam_mp4_sheet.png", "rec/cam_mkv_sheet.png", "rec/other_sheet.png"]


def test_live_sheets_keep_the_newest_frames_by_the_clock(tmp_path, monkeypatch):
    import nirvision.io.sheet_sink as sheet_sink

    monkeypatch.setattr(sheet_sink, "LIVE_INTERVAL_S", 10.0)
    info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1), time_base=Fraction(1, 1))
    sink = ContactSheetSink(tmp_path / "cam_sheet.png", info, rows=3)
    for i in range(100):  # a frame a second; one kept every 10 s, the newest 3
        nir = np.full((64, 32), i, np.uint8)
        sink.write(Frame(nir, index=i, pts=i, time_base=Fraction(1, 1)), np.zeros((64, 32, 3), np.uint8))
    sink.close()
    assert [labels[0] for labels, _, _, _ in sink.kept] == ["0:01:10.00", "0:01:20.00", "0:01:30.00"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", labels[1]) for labels, _, _, _ in sink.kept)  # the wall clock
    assert nir_rows(tmp_path / "cam_sheet.png", 64, 32, 3) == [70, 80, 90]


def test_a_sheet_of_a_range_gives_the_recordings_time_and_the_wall_clock(tmp_path):
    from datetime import datetime, timezone

    created = datetime(2026, 11, 30, 20, 0, 0, tzinfo=timezone.utc)
    info = SourceInfo(kind="file", description=str(tmp_path / "night.mp4"), live=False, fps=Fraction(25), time_base=Fraction(1, 25), frames=3,
                      created=created, created_at=0.0)
    sink = ContactSheetSink(tmp_path / "s.png", info, rows=3)
    for i, t in enumerate((8130.0, 8131.0, 8132.0)):  # --start 2:15:30: the output's 0 is 2 h 15 min 30 s into the recording
        sink.write(Frame(np.full((64, 32), 40, np.uint8), index=i, pts=int(t * 25), time_base=Fraction(1, 25)), np.zeros((64, 32, 3), np.uint8))
    sink.close()
    local = lambda s: (created + __import__("datetime").timedelta(seconds=s)).astimezone().strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    assert [labels for labels, _, _, _ in sink.kept] == [["0:00:00.00", "rec 2:15:30.00", local(8130)], ["0:00:01.00", "rec 2:15:31.00", local(8131)],
                                                        ["0:00:02.00", "rec 2:15:32.00", local(8132)]]
    assert cv2.imread(str(tmp_path / "s.png")) is not None


def test_non_square_pixels_are_shown_as_a_player_shows_them(tmp_path):
    """A 64x48 PAL-like source at pixel aspect 4:3: sheet and live view frames 85 wide."""
    from nirvision.io import open_sink
    from nirvision.io.base import Frame

    info = SourceInfo(kind="test", description="pal", live=False, fps=Fraction(25), time_base=Fraction(1, 25), frames=2,
                      sample_aspect_ratio=Fraction(4, 3))
    sheet = ContactSheetSink(tmp_path / "s.png", info, rows=2)
    view = open_sink("http://127.0.0.1:0", info)
    try:
        for i in range(2):
            frame = Frame(np.full((48, 64), 100, np.uint8), index=i, pts=i, time_base=Fraction(1, 25))
            rgb = np.full((48, 64, 3), 50, np.uint8)
            sheet.write(frame, rgb)
            view.write(frame, rgb)
        jpeg = view.latest.after(0, wait=False)[1]
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (48, 85)
    finally:
        view.close()
    sheet.close()
    assert [x.shape[:2] for _, x, _, _ in sheet.kept] == [(48, 85)] * 2


def test_frames_passed_through_in_colour_are_marked_as_recorded(tmp_path):
    info = SourceInfo(kind="file", description="day.mp4", live=False, fps=Fraction(25), time_base=Fraction(1, 25), frames=2)
    sink = ContactSheetSink(tmp_path / "day_sheet.png", info, rows=2)
    black = np.zeros((48, 64, 3), np.uint8)
    sink.write(Frame(np.zeros((48, 64), np.uint8), index=0, pts=0, time_base=Fraction(1, 25)), black)  # colorized
    sink.write(Frame(np.zeros((48, 64), np.uint8), index=1, pts=1, time_base=Fraction(1, 25), color=black), black)  # as recorded
    sink.close()
    img = cv2.imread(str(tmp_path / "day_sheet.png"), cv2.IMREAD_GRAYSCALE)
    tiles = [img[HEAD + PAD + r * (48 + PAD): HEAD + PAD + r * (48 + PAD) + 48, 2 * PAD + 64: 2 * PAD + 128] for r in range(2)]
    assert tiles[0].max() == 0 and tiles[1][:20].max() == 255  # "as recorded" written on the second row's colours only


@pytest.mark.parametrize("count", [5, 150, 1000])
def test_a_file_of_unknown_length_gets_frames_spread_over_all_of_it(tmp_path, count):
    # MKV / WebM / TS headers give no frame count: not the live rule (a frame a minute, the newest six)
    info = SourceInfo(kind="file", description="night.mkv", live=False, fps=Fraction(25), time_base=Fraction(1, 25))
    sink = ContactSheetSink(tmp_path / "s.png", info, rows=6)
    for i in range(count):
        sink.write(Frame(np.full((64, 32), i % 256, np.uint8), index=i, pts=i, time_base=Fraction(1, 25)), np.zeros((64, 32, 3), np.uint8))
    picked = [round(float(t.split(":")[-1]) * 25 + 60 * 25 * int(t.split(":")[-2])) for t in (labels[0] for labels, _, _, _ in sink._spread())]
    sink.close()
    rows = min(6, count)
    assert len(picked) == rows and picked[0] == 0 and picked[-1] == count - 1 and picked == sorted(set(picked))
    ideal = [k * (count - 1) / (rows - 1) for k in range(rows)]
    assert all(abs(p - q) <= max(1, count / 12) for p, q in zip(picked, ideal))  # within half a sampling step of even spacing
    assert cv2.imread(str(tmp_path / "s.png")).shape[0] > rows * 64
