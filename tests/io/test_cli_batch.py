"""``nirvision colorize`` on several videos: a folder, a glob or a list into one output folder."""
import json
import os
import re
import signal
from pathlib import Path

import pytest

from nirvision.cli import main
from nirvision.cli.batch import batch_inputs, batch_outputs, glob_root
from nirvision.cli.done_manifest import MANIFEST
from nirvision.errors import InputError
from tests.io.media import make_clip, progress_past, read_video, start_cli, wait_for


def listed(folder: Path) -> list[Path]:
    """The files a batch wrote in ``folder`` (at any depth), less the record of finished runs."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def colorize(capsys, *args):
    code = main(["colorize", *map(str, args), "--threads", "1", "--workers", "1", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_of_videos_each_under_its_own_name_and_a_broken_one_skipped(tmp_path, tiny_model, capsys, monkeypatch):
    import nirvision.runtime.backends as backends

    src = tmp_path / "nights"
    src.mkdir()
    make_clip(src / "cam1.mp4", [0, 40, 80, 120])
    make_clip(src / "cam2.mkv", [0, 100, 200, 300, 400, 500], audio_packets=8)
    (src / "cam3.mp4").write_bytes(b"not a video: a download that failed")
    (src / "notes.txt").write_text("ignored: not a video")
    built = []
    create = backends.create_backend
    monkeypatch.setattr(backends, "create_backend", lambda *a, **k: built.append(a[0]) or create(*a, **k))

    code, _, err = colorize(capsys, src, "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 1, err  # one input failed; the others were written
    assert len(built) == 1  # one backend for the whole batch
    assert [p.name for p in listed(tmp_path / "out")] == ["cam1.mp4", "cam2.mkv"]
    one, two = read_video(tmp_path / "out" / "cam1.mp4"), read_video(tmp_path / "out" / "cam2.mkv")
    assert one["times"] == pytest.approx([0, 0.04, 0.08, 0.12], abs=1e-6) and one["sizes"] == [(48, 64)] * 4
    assert two["times"] == pytest.approx([0.1 * i for i in range(6)], abs=1e-6)
    assert two["audio"] == read_video(src / "cam2.mkv")["audio"] and two["audio"]  # audio copied file by file
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["inputs"] == 3 and [f["frames_out"] for f in stats["files"]] == [4, 6]
    assert [f["source"] for f in stats["failed"]] == [str(src / "cam3.mp4")] and "cannot be read as a video" in stats["failed"][0]["error"]
    assert "[3/3] skipped: video file" in err and re.search(r"2 of 3 videos colorized \(10 frames\); [\d.]+ s, [\d.]+ (fps|s a frame) overall; 1 failed:$", err, re.M)
    # ran to its end: nothing stopped midway or left; the batch's own frames, time and rate
    assert stats["stopped_by"] == "end of input" and stats["stopped_midway"] is None and stats["not_started"] == [] and stats["colorized"] == 2
    assert stats["frames_out"] == 10 and stats["wall_s"] > 0 and stats["fps"] == pytest.approx(10 / stats["wall_s"], rel=1e-2)
    assert err.rstrip().splitlines()[-1].startswith(f"  {src / 'cam3.mp4'}: video file")


def test_several_sources_and_globs_make_one_batch_with_names_kept_apart(tmp_path, tiny_model, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        make_clip(tmp_path / d / "x.mp4", [0, 40])
    make_clip(tmp_path / "y.mov", [0, 40, 80])
    code, _, err = colorize(capsys, str(tmp_path / "*" / "x.mp4"), tmp_path / "y.mov", "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0, err
    written = {p.relative_to(tmp_path / "out").as_posix(): len(read_video(p)["times"]) for p in listed(tmp_path / "out")}
    assert written == {"a/x.mp4": 2, "b/x.mp4": 2, "y.mov": 3}  # each under its folder below the one they share
    assert "3 of 3 videos colorized (7 frames)" in err
    # ** reaches into subfolders at any depth (an NVR's export: a folder a day)
    nvr = tmp_path / "nvr"
    for day in ("2026-12-01", "2026-12-02"):
        (nvr / day).mkdir(parents=True)
        make_clip(nvr / day / "z.mp4", [0, 40])
    make_clip(nvr / "top.mp4", [0, 40])
    assert batch_inputs([str(nvr / "**" / "*.mp4")]) == [nvr / "2026-12-01" / "z.mp4", nvr / "2026-12-02" / "z.mp4", nvr / "top.mp4"]


def test_what_a_batch_refuses_before_anything_runs(tmp_path, tiny_model, capsys):
    src = tmp_path / "v"
    src.mkdir()
    make_clip(src / "a.mp4", [0, 40])
    before = (src / "a.mp4").read_bytes()
    cases = [
        ([src, "-o", src], "output " + str(src / "a.mp4") + ": would overwrite the source"),
        ([src, "-o", tmp_path / "one.mp4"], "one.mp4: a batch of videos (1) needs one output folder (-o FOLDER)"),
        ([src, "-o", tmp_path / "o1", "-o", tmp_path / "o2"], "needs one output folder"),
        ([src / "a.mp4", tmp_path / "missing.mp4", "-o", tmp_path / "o"], f"source {tmp_path / 'missing.mp4'}: not found; several sources make a batch"),
        ([src / "a.mp4", "rtsp://admin:hunter2@127.0.0.1:1/x", "-o", tmp_path / "o"], "source rtsp://admin:***@127.0.0.1:1/x: not a video file"),
    ]
    for args, needle in cases:
        code, _, err = colorize(capsys, *args, "--model", tiny_model)
        assert code == 2 and needle in err and "hunter2" not in err, err
    assert (src / "a.mp4").read_bytes() == before and sorted(p.name for p in src.iterdir()) == ["a.mp4"]
    assert not (tmp_path / "o").exists() and not (tmp_path / "o1").exists()


def test_batch_inputs_and_outputs():
    assert batch_inputs(["night.mp4"]) is None and batch_inputs(["synthetic:64x48"]) is None  # one source as before
    names = batch_outputs([Path("/v/a.avi"), Path("/v/a.mp4"), Path("/v/a.mkv"), Path("/v/b.ts"), Path("/v/B.mp4"), Path("/v/c.ts")], ["/out"])
    # H.264 cannot go in .avi / .ts: .mp4, keeping the type where another input has that name (case aside)
    assert [str(p) for p in names] == ["/out/a_avi.mp4", "/out/a.mp4", "/out/a.mkv", "/out/b_ts.mp4", "/out/B.mp4", "/out/c.mp4"]
    # a name does not depend on the inputs found with it: cam.mp4 is cam.mp4 with or without cam.avi beside it
    assert batch_outputs([Path("/v/cam.mp4")], ["/out"]) == [Path("/out/cam.mp4")]
    assert batch_outputs([Path("/v/cam.avi"), Path("/v/cam.mp4")], ["/out"]) == [Path("/out/cam_avi.mp4"), Path("/out/cam.mp4")]
    assert batch_outputs([Path("/v/cam.avi"), Path("/v/cam.ts")], ["/out"]) == [Path("/out/cam_avi.mp4"), Path("/out/cam_ts.mp4")]
    # files of one name from different folders, given by name: in the order given; a real x_2.mp4 keeps its name
    same = batch_outputs([Path("/a/x.mp4"), Path("/b/x.mp4"), Path("/c/x_2.mp4"), Path("/a/y.avi"), Path("/b/y.avi")], ["/out"])
    assert [p.name for p in same] == ["x.mp4", "x_3.mp4", "x_2.mp4", "y.mp4", "y_2.mp4"]
    days = batch_outputs([Path("/nvr/d1/cam.mp4"), Path("/nvr/d2/cam.mp4"), Path("/nvr/all.mp4")], ["/out"], ["d1/cam.mp4", "d2/cam.mp4", "all.mp4"])
    assert [str(p) for p in days] == ["/out/d1/cam.mp4", "/out/d2/cam.mp4", "/out/all.mp4"]
    assert glob_root("nvr/**/*.mp4") == Path("nvr") and glob_root("*/x.mp4") == Path(".") and glob_root("/a/b/c*.mp4") == Path("/a/b")
    with pytest.raises(InputError, match="needs one output folder"):
        batch_outputs([Path("/x/a.mp4")], ["/out/a.mp4"])


def test_signal_mid_batch_finalizes_the_current_video_and_ends_the_batch(tmp_path, tiny_model):
    n = 400
    for name in ("first", "second"):
        make_clip(tmp_path / f"{name}.mp4", [40 * i for i in range(n)])
    proc = start_cli(["colorize", "first.mp4", "second.mp4", "-o", "out", "--model", str(tiny_model), "--threads", "1",
                      "--status-interval", "0.1", "--stats-json", "s.json"], cwd=tmp_path)

    wait_for(progress_past(proc, n), 120, "a progress line with five frames of the first video written")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "[2/2]" not in err  # the second video was not started
    stats = json.loads((tmp_path / "s.json").read_text())
    # the first is no finished video: said as stopped midway, with its frames of how many; the second as not started
    assert stats["stopped_by"] == "SIGTERM" and stats["files"] == [] and stats["colorized"] == 0 and stats["failed"] == []
    midway = stats["stopped_midway"]
    assert (midway["source"], midway["output"], midway["of"]) == ("first.mp4", str(Path("out") / "first.mp4"), n)
    assert midway["summary"]["stopped_by"] == "SIGTERM" and stats["not_started"] == ["second.mp4"]
    out = read_video(tmp_path / "out" / "first.mp4")  # plays to its end
    assert 0 < len(out["times"]) == midway["frames_out"] == stats["frames_out"] < n
    assert f"0 of 2 videos colorized (0 frames), 1 stopped midway (out/first.mp4, {midway['frames_out']} of {n} frames), 1 not started (stopped by SIGTERM); " in err
    assert not (tmp_path / "out" / "second.mp4").exists()


def test_a_folder_or_glob_of_videos_and_images_is_refused_before_anything_runs(tmp_path, tiny_model, capsys):
    import cv2
    import numpy as np

    from nirvision.io import open_source

    nvr = tmp_path / "nvr"
    (nvr / "day1").mkdir(parents=True)
    make_clip(nvr / "cam1.mp4", [0, 40])
    make_clip(nvr / "cam2.mkv", [0, 40])
    make_clip(nvr / "cam3.mp4", [0, 40])
    cv2.imwrite(str(nvr / "snapshot.jpg"), np.full((48, 64), 90, np.uint8))  # an NVR export's snapshot beside its videos
    code, _, err = colorize(capsys, nvr, "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 2, err
    assert (f"folder {nvr}: holds 3 video files (.mp4, .mkv) and 1 image (.jpg); expected one kind: "
            f'give "{nvr}/*.mp4" "{nvr}/*.mkv" for the videos (a batch), or "{nvr}/*.jpg" for the images') in err
    assert not (tmp_path / "out").exists() and json.loads((tmp_path / "s.json").read_text())["stopped_by"] == "error"
    # a recursive glob, also beside other sources; the same through the library
    make_clip(nvr / "day1" / "cam.mp4", [0, 40])
    cv2.imwrite(str(nvr / "day1" / "a.png"), np.zeros((48, 64), np.uint8))
    cv2.imwrite(str(nvr / "day1" / "b.png"), np.zeros((48, 64), np.uint8))
    make_clip(tmp_path / "other.mp4", [0, 40])
    code, _, err = colorize(capsys, tmp_path / "other.mp4", str(nvr / "**" / "*"), "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and f"glob '{nvr}/**/*': holds 4 video files (.mp4, .mkv) and 3 images (.png, .jpg)" in err, err
    assert f'give "{nvr}/**/*.mp4" "{nvr}/**/*.mkv" for the videos (a batch), or "{nvr}/**/*.png" or "{nvr}/**/*.jpg" for the images' in err
    with pytest.raises(InputError, match="holds 1 video file .* and 2 images"):
        open_source(str(nvr / "day1"))
    assert not (tmp_path / "out").exists()
    # the globs it names pick one kind: the videos as a batch, the images as one source
    code, _, err = colorize(capsys, str(nvr / "*.mp4"), str(nvr / "*.mkv"), "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and [p.name for p in listed(tmp_path / "out")] == ["cam1.mp4", "cam2.mkv", "cam3.mp4"], err
    assert batch_inputs([str(nvr / "day1" / "*.png")]) is None and open_source(str(nvr / "day1" / "*.png")).info.frames == 2


def test_lists_refuse_images_and_empty_globs_and_take_each_video_once(tmp_path, tiny_model, capsys):
    import cv2
    import numpy as np

    make_clip(tmp_path / "c2.mp4", [0, 40])
    make_clip(tmp_path / "c10.mp4", [0, 40, 80])
    cv2.imwrite(str(tmp_path / "still.png"), np.zeros((48, 64), np.uint8))
    for extra, needle in (([tmp_path / "still.png"], "still.png: an image"),
                          ([str(tmp_path / "none" / "*.mp4")], "none/*.mp4: matches no files")):
        code, _, err = colorize(capsys, tmp_path / "c2.mp4", *extra, "-o", tmp_path / "o", "--model", tiny_model)
        assert code == 2 and needle in err, err
    assert batch_inputs([str(tmp_path / "c2.mp4"), str(tmp_path / "c2.mp4"), str(tmp_path / "*.mp4")]) == [tmp_path / "c2.mp4", tmp_path / "c10.mp4"]
    code, _, err = colorize(capsys, tmp_path / "c2.mp4", tmp_path / "c2.mp4", "-o", tmp_path / "o.avi", "--model", tiny_model)
    assert code == 2 and "needs one output folder" in err and not (tmp_path / "o.avi").exists()


def test_stats_file_that_cannot_be_written_is_said_before_anything_runs(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "a.mp4", [0, 40])
    (tmp_path / "afile").write_text("")
    code, _, err = colorize(capsys, tmp_path / "a.mp4", tmp_path / "a.mp4", str(tmp_path / "*.mp4"), "-o", tmp_path / "o",
                            "--model", tiny_model, "--stats-json", tmp_path / "afile" / "s.json")
    assert code == 2 and "--stats-json" in err and not (tmp_path / "o").exists()


def test_a_signal_while_the_next_video_opens_ends_the_batch_cleanly(tmp_path, tiny_model, capsys, monkeypatch):
    import os

    import nirvision.io as io

    for name in ("a", "b", "c"):
        make_clip(tmp_path / f"{name}.mp4", [0, 40, 80])
    real = io.open_source

    def slow_open(spec, **kw):  # SIGTERM arrives while the second video opens
        if spec.endswith("b.mp4"):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(spec, **kw)

    monkeypatch.setattr(io, "open_source", slow_open)
    code, _, err = colorize(capsys, tmp_path, "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 128 + signal.SIGTERM, err
    assert [p.name for p in listed(tmp_path / "out")] == ["a.mp4"] and len(read_video(tmp_path / "out" / "a.mp4")["times"]) == 3
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [f["frames_out"] for f in stats["files"]] == [3] and stats["failed"] == [] and stats["stopped_midway"] is None
    assert stats["stopped_by"] == "SIGTERM" and stats["not_started"] == [str(tmp_path / "b.mp4"), str(tmp_path / "c.mp4")]
    assert "1 of 3 videos colorized (3 frames), 2 not started (stopped by SIGTERM); " in err and "[3/3]" not in err


def test_skip_done_goes_on_where_an_interrupted_batch_stopped(tmp_path, tiny_model, capsys):
    src, out = tmp_path / "nights", tmp_path / "out"
    src.mkdir()
    for name, n in (("a", 5), ("b", 5), ("c", 6), ("d", 4)):
        make_clip(src / f"{name}.mp4", [40 * i for i in range(n)])
    code, _, err = colorize(capsys, src / "a.mp4", "-o", out / "a.mp4", "--model", tiny_model)  # finished earlier
    assert code == 0, err
    code, _, err = colorize(capsys, src / "b.mp4", "-o", out / "b.mp4", "--model", tiny_model, "--max-frames", "2")  # stopped midway
    assert code == 0, err
    (out / "c.mp4").write_bytes((src / "c.mp4").read_bytes()[:300])  # killed: cut short, no index
    finished = (out / "a.mp4").read_bytes()

    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done", "--stats-json", tmp_path / "s.json")
    assert code == 0, err
    assert f"[1/4] {src / 'a.mp4'}: done before ({out / 'a.mp4'} was finished from it: 5 frames), skipped" in err  # a run of one video records it too
    assert f"[2/4] {src / 'b.mp4'}: colorizing again ({out / 'b.mp4'} holds another range (--max-frames 2))" in err
    assert f"[3/4] {src / 'c.mp4'}: colorizing again ({out / 'c.mp4'} cannot be read to its end" in err
    assert "3 of 4 videos colorized (15 frames); 1 done before, skipped" in err
    assert (out / "a.mp4").read_bytes() == finished  # not touched
    assert {p.name: len(read_video(p)["times"]) for p in listed(out)} == {"a.mp4": 5, "b.mp4": 5, "c.mp4": 6, "d.mp4": 4}
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [f["frames_out"] for f in stats["files"]] == [5, 6, 4] and [s["source"] for s in stats["skipped"]] == [str(src / "a.mp4")]

    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")  # all done now
    assert code == 0 and "0 of 4 videos colorized (0 frames); 4 done before, skipped" in err, err
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done", "--max-frames", "3")
    assert code == 0 and "4 done before" in err, err
    assert f"[1/4] {src / 'a.mp4'}: done before ({out / 'a.mp4'} was finished from it: 5 frames)" in err  # the whole video holds the first 3
    assert f"[4/4] {src / 'd.mp4'}: done before ({out / 'd.mp4'} was finished from it: 4 frames)" in err  # the whole video holds the first 3


def test_skip_done_with_one_video_and_where_it_cannot_apply(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "a.mp4", [0, 40, 80])
    code, _, err = colorize(capsys, tmp_path / "a.mp4", "-o", tmp_path / "o.mp4", "--model", tiny_model, "--skip-done")
    assert code == 0 and len(read_video(tmp_path / "o.mp4")["times"]) == 3, err
    code, _, err = colorize(capsys, tmp_path / "a.mp4", "-o", tmp_path / "o.mp4", "--model", tiny_model, "--skip-done")
    assert code == 0 and "done before (" in err and "frames in" not in err, err
    code, _, err = colorize(capsys, "synthetic:64x48:3", "-o", tmp_path / "s.mp4", "--model", tiny_model, "--skip-done")
    assert code == 2 and "--skip-done: source synthetic:64x48:3 is not a video file" in err and not (tmp_path / "s.mp4").exists()
    code, _, err = colorize(capsys, tmp_path / "a.mp4", "-o", tmp_path / "pngs", "--model", tiny_model, "--skip-done")
    assert code == 2 and "--skip-done: output" in err and "expected one video file" in err


def test_an_nvr_export_keeps_its_day_folders_and_resumes_as_it_grows(tmp_path, tiny_model, capsys):
    nvr = tmp_path / "nvr"
    (nvr / "day1").mkdir(parents=True)
    make_clip(nvr / "day1" / "cam.mp4", [0, 40])
    glob_ = str(nvr / "**" / "*.mp4")
    code, _, err = colorize(capsys, glob_, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and (tmp_path / "out" / "day1" / "cam.mp4").is_file(), err
    # a day later: the first day's output is where the second run looks for it, and is skipped
    (nvr / "day2").mkdir()
    make_clip(nvr / "day2" / "cam.mp4", [0, 40, 80])
    code, _, err = colorize(capsys, glob_, "-o", tmp_path / "out", "--model", tiny_model, "--skip-done")
    assert code == 0 and "1 done before, skipped" in err, err
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.mp4")) == ["day1/cam.mp4", "day2/cam.mp4"]
    # an output folder inside the export: its videos are not taken as inputs on the next run
    code, _, err = colorize(capsys, glob_, "-o", nvr / "rgb", "--model", tiny_model)
    assert code == 0 and sorted(p.relative_to(nvr / "rgb").as_posix() for p in (nvr / "rgb").rglob("*.mp4")) == ["day1/cam.mp4", "day2/cam.mp4"]
    code, _, err = colorize(capsys, glob_, "-o", nvr / "rgb", "--model", tiny_model, "--skip-done")
    assert code == 0 and "leaving out 2 video(s) under the output folder" in err and "2 done before, skipped" in err, err
    # a folder reached twice through a link is colorized once
    (tmp_path / "linked").mkdir()
    make_clip(tmp_path / "linked" / "real.mp4", [0, 40])
    (tmp_path / "linked" / "again").symlink_to(tmp_path / "linked")
    assert len(batch_inputs([str(tmp_path / "linked" / "**" / "*.mp4")])) == 1


def test_a_batch_keeps_an_http_password_out_of_every_message(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "a.mp4", [0, 40])
    make_clip(tmp_path / "b.mp4", [0, 40])
    code, _, err = colorize(capsys, tmp_path / "a.mp4", tmp_path / "b.mp4", "-o", "http://u:PWtwo@127.0.0.1:0", "--model", tiny_model)
    assert code == 2 and "needs one output folder" in err and "PWtwo" not in err
    for extra in (["--segment", "10"], ["--skip-done"]):
        code, _, err = colorize(capsys, tmp_path / "a.mp4", "-o", "http://u:PWseg@127.0.0.1:0", "--model", tiny_model, *extra)
        assert code == 2 and "u:***@127.0.0.1" in err and "PWseg" not in err, err


def test_videos_of_one_name_in_a_batch_get_a_contact_sheet_each(tmp_path, tiny_model, capsys):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "x.mp4", [0, 40])
    make_clip(tmp_path / "in" / "x.mkv", [0, 40, 80])
    code, _, err = colorize(capsys, tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_model, "--contact-sheet")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["x_mkv_sheet.png", "x_mp4_sheet.png"]


def test_a_batch_stopped_midway_says_what_it_colorized_cut_short_and_never_started(tmp_path, tiny_model, capsys, monkeypatch):
    import nirvision.io as io

    src, out = tmp_path / "nights", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", [0, 40, 80])
    (src / "b.mp4").write_bytes(b"not a video")
    make_clip(src / "c.mp4", [40 * i for i in range(40)])
    make_clip(src / "d.mp4", [0, 40])
    real = io.open_sink

    def open_sink(spec, info, **kw):  # Ctrl-C as c.mp4's second frame is written
        sink = real(spec, info, **kw)
        if spec.endswith("c.mp4"):
            write, written = sink.write, []

            def write_and_signal(frame, image):
                written.append(frame)
                if len(written) == 2:
                    os.kill(os.getpid(), signal.SIGINT)
                write(frame, image)
            sink.write = write_and_signal
        return sink

    monkeypatch.setattr(io, "open_sink", open_sink)
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 128 + signal.SIGINT, err
    got = len(read_video(out / "c.mp4")["times"])  # finalized: it plays, with the frames written before the stop
    assert 2 <= got < 40 and not (out / "d.mp4").exists()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["stopped_by"] == "SIGINT" and [f["frames_out"] for f in stats["files"]] == [3] and stats["colorized"] == 1
    assert stats["stopped_midway"]["source"] == str(src / "c.mp4") and stats["stopped_midway"]["output"] == str(out / "c.mp4")
    assert (stats["stopped_midway"]["frames_out"], stats["stopped_midway"]["of"]) == (got, 40)
    assert stats["not_started"] == [str(src / "d.mp4")] and [f["source"] for f in stats["failed"]] == [str(src / "b.mp4")]
    assert stats["frames_out"] == 3 + got and stats["fps"] == pytest.approx((3 + got) / stats["wall_s"], rel=1e-2)
    assert (f"1 of 4 videos colorized (3 frames), 1 stopped midway ({out / 'c.mp4'}, {got} of 40 frames), 1 not started "
            "(stopped by SIGINT); ") in err and err.rstrip().splitlines()[-2].endswith("overall; 1 failed:")
    # the rerun with --skip-done leaves a.mp4, colorizes c.mp4 again from its start, then d.mp4
    monkeypatch.setattr(io, "open_sink", real)
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done", "--stats-json", tmp_path / "s.json")
    assert code == 1 and f"{src / 'c.mp4'}: colorizing again" in err, err
    assert {p.name: len(read_video(p)["times"]) for p in listed(out)} == {"a.mp4": 3, "c.mp4": 40, "d.mp4": 2}
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["stopped_by"] == "end of input" and stats["stopped_midway"] is None and stats["not_started"] == []
    assert [f["frames_out"] for f in stats["files"]] == [40, 2] and len(stats["skipped"]) == 1 and stats["frames_out"] == 42
    assert "2 of 4 videos colorized (42 frames); 1 done before, skipped; " in err


def test_a_folder_of_day_folders_or_of_other_types_says_what_it_holds_and_the_globs_that_take_it(tmp_path, tiny_model, capsys):
    import cv2
    import numpy as np

    nvr = tmp_path / "nvr"
    for day in ("day1", "day2"):
        (nvr / day).mkdir(parents=True)
        make_clip(nvr / day / "cam.mp4", [0, 40])
    make_clip(nvr / "day2" / "cam2.mkv", [0, 40])
    code, _, err = colorize(capsys, nvr, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and not (tmp_path / "out").exists(), err
    assert (f"folder {nvr}: holds no videos or images at its top level, but 3 videos in its subfolders (.mp4, .mkv); "
            f'give "{nvr}/**/*.mp4" "{nvr}/**/*.mkv"') in err
    code, _, err = colorize(capsys, str(nvr / "**" / "*.mp4"), str(nvr / "**" / "*.mkv"), "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 0 and [p.relative_to(tmp_path / "out").as_posix() for p in listed(tmp_path / "out")] == [
        "day1/cam.mp4", "day2/cam.mp4", "day2/cam2.mkv"], err  # what it offers works
    # images in subfolders (a data set's class folders) are offered as one source each
    (tmp_path / "ds" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "ds" / "a" / "1.png"), np.zeros((48, 64), np.uint8))
    with pytest.raises(InputError, match=r'but 1 image in its subfolders \(.png\); give ".*/ds/\*\*/\*.png"'):
        batch_inputs([str(tmp_path / "ds")])
    # an NVR's own types (proprietary ones FFmpeg may or may not read): counted by type, with the glob that names them
    dav = tmp_path / "dav"
    dav.mkdir()
    for name in ("ch01.g64", "ch02.g64", "ch03.sec"):
        (dav / name).write_bytes((tmp_path / "nvr" / "day1" / "cam.mp4").read_bytes())
    (dav / "index.txt").write_text("channel list")
    for spec, what in ((dav, f"folder {dav}: holds"), (str(dav / "*"), f"glob '{dav}/*': matches")):
        code, _, err = colorize(capsys, spec, "-o", tmp_path / "davo", "--model", tiny_model)
        assert code == 2 and not (tmp_path / "davo").exists(), err
        assert (f"{what} no videos or images of a known type, but 2 .g64 files, 1 .sec file and 1 .txt file; "
                f'give "{dav}/*.g64" "{dav}/*.sec" (a glob that names a type takes its files as videos') in err
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("")
    with pytest.raises(InputError, match=r"holds no videos or images of a known type, but 1 .txt file; expected videos \(.264, "):
        batch_inputs([str(tmp_path / "notes")])
    assert batch_inputs([str(tmp_path / "empty*")]) is None  # matches nothing: said by the image source, as before


def test_a_glob_that_names_a_type_takes_its_files_as_videos(tmp_path, tiny_model, capsys):
    dav = tmp_path / "dav"
    dav.mkdir()
    make_clip(tmp_path / "c.mp4", [0, 40, 80])
    (dav / "ch01.sec").write_bytes((tmp_path / "c.mp4").read_bytes())  # a type nirvision does not know: FFmpeg reads it by its content
    (dav / "ch02.sec").write_bytes(b"a recording that is no video")
    (dav / "ch03.g64").write_bytes((tmp_path / "c.mp4").read_bytes())  # another type: not matched
    code, _, err = colorize(capsys, str(dav / "*.sec"), "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 1, err  # the unreadable one is the batch's failure, listed
    assert [p.name for p in listed(tmp_path / "out")] == ["ch01.mp4"] and len(read_video(tmp_path / "out" / "ch01.mp4")["times"]) == 3
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [f["source"] for f in stats["failed"]] == [str(dav / "ch02.sec")] and stats["inputs"] == 2
    assert batch_inputs([str(dav / "*.sec"), str(dav / "*.g64")]) == [dav / "ch01.sec", dav / "ch02.sec", dav / "ch03.g64"]


def test_fps_is_refused_for_a_batch_of_videos(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "a.mp4", [0, 40])
    make_clip(tmp_path / "b.mp4", [0, 40])
    code, _, err = colorize(capsys, tmp_path / "a.mp4", tmp_path / "b.mp4", "-o", tmp_path / "out", "--model", tiny_model, "--fps", "10",
                            "--stats-json", tmp_path / "s.json")
    assert code == 2 and "--fps 10: the frame rate given to image folders and globs; the videos of a batch keep their own timestamps" in err
    assert not (tmp_path / "out").exists() and json.loads((tmp_path / "s.json").read_text())["stopped_by"] == "error"


def test_a_batch_ended_by_an_error_says_so_and_what_it_did_not_start(tmp_path, tiny_model, capsys, monkeypatch):
    import nirvision.cli.done_manifest as manifest

    for name in ("a", "b", "c"):
        make_clip(tmp_path / f"{name}.mp4", [0, 40])

    def record(out, *args, **kw):  # the output folder's record cannot be written: the batch cannot go on
        raise PermissionError(f"{out.parent / MANIFEST}: read-only")

    monkeypatch.setattr(manifest, "record", record)
    code, _, err = colorize(capsys, tmp_path, "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 1 and "PermissionError" in err, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["stopped_by"] == "error" and "PermissionError" in stats["error"] and stats["stopped_midway"] is None
    assert [f["frames_out"] for f in stats["files"]] == [2] and stats["not_started"] == [str(tmp_path / "b.mp4"), str(tmp_path / "c.mp4")]
    assert "1 of 3 videos colorized (2 frames), 2 not started (stopped by an error); " in err


def test_a_full_disk_stops_the_batch_instead_of_failing_every_video_in_turn(tmp_path, tiny_model, capsys):
    src, out = tmp_path / "nights", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("a", "b", "c"):
        make_clip(src / f"{name}.mp4", [0, 40, 80])
    (out / "a.mp4").symlink_to("/dev/full")  # the first output meets a full disk
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 1, err
    assert "no space left for the outputs: the batch stops here" in err and "[2/3]" not in err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["stopped_by"] == "disk full" and stats["not_started"] == [str(src / "b.mp4"), str(src / "c.mp4")]
    assert [f["source"] for f in stats["failed"]] == [str(src / "a.mp4")] and "No space left on device" in stats["failed"][0]["error"]
    assert not (out / "b.mp4").exists() and not (out / "c.mp4").exists()


def test_a_video_without_one_readable_frame_is_a_failure_not_a_silent_nothing(tmp_path, tiny_model, capsys):
    from tests.io.media import corrupt_packets

    src = tmp_path / "nights"
    src.mkdir()
    make_clip(src / "a.mp4", [0, 40, 80])
    make_clip(src / "b.avi", [0, 40, 80], codec="mjpeg")
    corrupt_packets(src / "b.avi", [0, 1, 2])  # every picture of it undecodable
    code, _, err = colorize(capsys, src, "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    assert code == 1, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [f["source"] for f in stats["failed"]] == [str(src / "b.avi")] and "holds no decodable frames" in stats["failed"][0]["error"]
    assert stats["colorized"] == 1 and [f["frames_out"] for f in stats["files"]] == [3]


def test_a_missing_folder_is_said_to_be_a_missing_folder(tmp_path, tiny_model, capsys):
    code, _, err = colorize(capsys, f"{tmp_path}/night/", "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 2 and f"source {tmp_path}/night/: folder not found; expected a folder of videos or images" in err
    code, _, err = colorize(capsys, f"{tmp_path}/night/", "-o", tmp_path / "out", "--model", tiny_model, "--skip-done")
    assert code == 2 and f"source {tmp_path}/night/: " in err and "--skip-done:" not in err.split("error: ")[1][:12]
