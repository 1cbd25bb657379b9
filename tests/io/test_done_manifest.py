"""``--skip-done`` and the record of finished outputs (``.nirvision-done.json``): what a run that
ended normally vouches for, and what it does not (an interrupted run, another source, another range)."""
import json
import os
import signal
import threading
from pathlib import Path

from nirvision.cli import main
from nirvision.cli.done_manifest import MANIFEST
from tests.io.media import corrupt_packets, make_clip, read_video, wait_for


def colorize(capsys, *args):
    code = main(["colorize", *map(str, args), "--threads", "1", "--workers", "1", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def entries(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())["outputs"]


def test_a_source_with_an_undecodable_packet_is_done_after_one_run_and_a_corrupt_record_falls_back(tmp_path, tiny_model, capsys, caplog):
    src, out = tmp_path / "export", tmp_path / "out"
    src.mkdir()
    make_clip(src / "cam.avi", list(range(0, 400, 40)), codec="mjpeg")
    corrupt_packets(src / "cam.avi", [2, 5])  # two of its ten frames do not decode: the output holds eight, for good
    make_clip(src / "good.mp4", [0, 40, 80])
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model)
    assert code == 0 and "2 undecodable and skipped" in err, err
    assert len(read_video(out / "cam.mp4")["times"]) == 8
    record = entries(out)["cam.mp4"]
    assert record["source"] == str((src / "cam.avi").resolve()) and record["frames"] == 8 and record["decode_errors"] == 2
    assert record["source_size"] == (src / "cam.avi").stat().st_size and record["output_size"] == (out / "cam.mp4").stat().st_size
    assert record["start"] == 0 and record["end"] is None and record["max_frames"] is None
    written = (out / "cam.mp4").read_bytes()

    # counted, it would be 8 of 10 frames and redone on every rerun; recorded, it is done
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0, err
    assert f"[1/2] {src / 'cam.avi'}: done before ({out / 'cam.mp4'} was finished from it: 8 frames, 2 undecodable), skipped" in err
    assert "0 of 2 videos colorized (0 frames); 2 done before, skipped" in err
    assert (out / "cam.mp4").read_bytes() == written
    # one video with --skip-done reads the same record
    code, _, err = colorize(capsys, src / "cam.avi", "-o", out / "cam.mp4", "--model", tiny_model, "--skip-done")
    assert code == 0 and "done before (" + str(out / "cam.mp4") + " was finished from it" in err and "frames in" not in err, err

    # a record that cannot be read: the outputs are counted, as those of earlier versions are
    (out / MANIFEST).write_text('{"version": 1, "outputs": {"cam.mp4": ')
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0, err
    assert f"{out / MANIFEST}: cannot be read" in caplog.text
    assert f"[1/2] {src / 'cam.avi'}: colorizing again ({out / 'cam.mp4'} holds 8 of 10 frames)" in err
    assert f"[2/2] {src / 'good.mp4'}: done before ({out / 'good.mp4'} holds all 3 frames), skipped" in err
    assert list(entries(out)) == ["cam.mp4"]  # written whole again, with the one finished now
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0 and "2 done before, skipped" in err, err
    assert not list(out.glob(f"{MANIFEST}.*"))  # no temporary file left


def test_an_interrupted_video_is_not_recorded_and_is_redone(tmp_path, tiny_model, capsys, monkeypatch):
    import nirvision.io as io
    import nirvision.runtime.engine as engine

    src, out = tmp_path / "export", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b"):
        make_clip(src / f"{name}.mp4", [40 * i for i in range(8)])
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model)
    assert code == 0 and sorted(entries(out)) == ["a.mp4", "b.mp4"], err

    # run again without --skip-done; SIGTERM while b.mp4 is read: it is finalized short
    stopped = threading.Event()
    request_stop = engine.Engine.request_stop
    monkeypatch.setattr(engine.Engine, "request_stop", lambda self, reason="stopped": (request_stop(self, reason), stopped.set()))
    runs = []
    run = engine.Engine.run
    monkeypatch.setattr(engine.Engine, "run", lambda self: (runs.append(self), run(self))[1])
    open_source = io.open_source

    def interrupted(spec, **kw):
        source = open_source(spec, **kw)
        if spec.endswith("b.mp4"):
            class Interrupted(type(source)):
                def __iter__(self):
                    for i, frame in enumerate(super().__iter__()):
                        if i == 3:  # once frames 0-2 are written (a loaded machine may not have got to them yet)
                            wait_for(lambda: runs[-1].stats.frames_out >= 3, 60, "frames 0-2 of b.mp4 written")
                            os.kill(os.getpid(), signal.SIGTERM)
                            wait_for(stopped.is_set, 60, "the engine told to stop")
                        yield frame
            source.__class__ = Interrupted
        return source

    monkeypatch.setattr(io, "open_source", interrupted)
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model)
    assert code == 128 + signal.SIGTERM, err
    assert 0 < len(read_video(out / "b.mp4")["times"]) < 8
    assert sorted(entries(out)) == ["a.mp4"]  # a.mp4 finished again; b.mp4 vouched for no more
    monkeypatch.setattr(io, "open_source", open_source)

    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0, err
    assert f"[1/2] {src / 'a.mp4'}: done before ({out / 'a.mp4'} was finished from it: 8 frames), skipped" in err
    assert f"[2/2] {src / 'b.mp4'}: colorizing again ({out / 'b.mp4'} holds " in err
    assert len(read_video(out / "b.mp4")["times"]) == 8 and sorted(entries(out)) == ["a.mp4", "b.mp4"]


def test_a_new_video_of_the_same_name_gets_its_own_output_and_is_colorized(tmp_path, tiny_model, capsys):
    src, out = tmp_path / "nm", tmp_path / "out"
    src.mkdir()
    make_clip(src / "cam.mp4", [40 * i for i in range(6)])
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model)
    assert code == 0, err
    first = (out / "cam.mp4").read_bytes()
    # the export grows by cam.avi, as many frames: it must not take cam.mp4's output for its own
    make_clip(src / "cam.avi", [40 * i for i in range(6)], codec="mjpeg")
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0, err
    assert f"[1/2] {src / 'cam.avi'} -> {out / 'cam_avi.mp4'}" in err
    assert f"[2/2] {src / 'cam.mp4'}: done before ({out / 'cam.mp4'} was finished from it: 6 frames), skipped" in err
    assert (out / "cam.mp4").read_bytes() == first and len(read_video(out / "cam_avi.mp4")["times"]) == 6
    assert entries(out)["cam_avi.mp4"]["source"] == str((src / "cam.avi").resolve())


def test_an_output_of_another_source_is_not_done(tmp_path, tiny_model, capsys):
    src, out = tmp_path / "nm", tmp_path / "out"
    src.mkdir()
    make_clip(src / "cam.avi", [40 * i for i in range(6)], codec="mjpeg")
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model)  # alone, cam.avi is written as cam.mp4
    assert code == 0 and entries(out)["cam.mp4"]["source"] == str((src / "cam.avi").resolve()), err
    # then cam.mp4 appears, as many frames: out/cam.mp4 is its name, and holds cam.avi's colours
    make_clip(src / "cam.mp4", [40 * i for i in range(6)])
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0, err
    assert f"[1/2] {src / 'cam.avi'} -> {out / 'cam_avi.mp4'}" in err
    assert f"[2/2] {src / 'cam.mp4'}: colorizing again ({out / 'cam.mp4'} was colorized from another source, {(src / 'cam.avi').resolve()})" in err
    assert "2 of 2 videos colorized (12 frames)" in err
    owners = {name: Path(e["source"]).name for name, e in entries(out).items()}
    assert owners == {"cam.mp4": "cam.mp4", "cam_avi.mp4": "cam.avi"}
    # and a source changed since its output was made is redone
    make_clip(src / "cam.mp4", [40 * i for i in range(6)], size=(32, 48))
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0 and f"{src / 'cam.mp4'}: colorizing again ({src / 'cam.mp4'} changed since {out / 'cam.mp4'} was colorized from it)" in err, err
    assert read_video(out / "cam.mp4")["sizes"] == [(48, 32)] * 6


def test_an_output_of_another_range_is_not_done(tmp_path, tiny_model, capsys):
    src, out = tmp_path / "v", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b"):
        make_clip(src / f"{name}.mp4", [40 * i for i in range(10)])
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--end", "0.2")
    assert code == 0 and len(read_video(out / "a.mp4")["times"]) == 5, err
    assert entries(out)["a.mp4"]["end"] == 0.2
    # another range of as many frames: counting would call it done
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done", "--start", "0.2", "--duration", "0.2")
    assert code == 0, err
    assert f"[1/2] {src / 'a.mp4'}: colorizing again ({out / 'a.mp4'} holds another range (--end 0.2))" in err
    assert "2 of 2 videos colorized (10 frames)" in err
    assert read_video(out / "a.mp4")["times"] == read_video(out / "b.mp4")["times"] and len(read_video(out / "a.mp4")["times"]) == 5
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done", "--start", "0.2", "--end", "0.4")  # the same range
    assert code == 0 and "2 done before, skipped" in err, err
    # a run capped by --max-frames covers a smaller cap, not the whole range
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--max-frames", "3")
    assert code == 0, err
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done", "--max-frames", "2")
    assert code == 0 and "2 done before, skipped" in err, err
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0 and f"colorizing again ({out / 'a.mp4'} holds another range (--max-frames 3))" in err, err
    assert len(read_video(out / "a.mp4")["times"]) == 10


def test_a_recording_that_changes_while_it_is_read_is_redone(tmp_path, tiny_model, capsys, monkeypatch):
    import nirvision.io as io

    src, out = tmp_path / "export", tmp_path / "out"
    src.mkdir()
    make_clip(src / "cam.mp4", [40 * i for i in range(6)])
    open_source = io.open_source

    def growing(spec, **kw):  # the recorder still writes the file while it is read (its time moves on)
        source = open_source(spec, **kw)

        class Growing(type(source)):
            def __iter__(self):
                for i, frame in enumerate(super().__iter__()):
                    if i == 2:
                        st = os.stat(spec)
                        os.utime(spec, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
                    yield frame
        source.__class__ = Growing
        return source

    monkeypatch.setattr(io, "open_source", growing)
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model)
    assert code == 0, err
    assert entries(out)["cam.mp4"]["source_mtime_ns"] != (src / "cam.mp4").stat().st_mtime_ns  # as it was when the run began
    monkeypatch.setattr(io, "open_source", open_source)
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0 and f"colorizing again ({src / 'cam.mp4'} changed since {out / 'cam.mp4'} was colorized from it)" in err, err
    code, _, err = colorize(capsys, src, "-o", out, "--model", tiny_model, "--skip-done")
    assert code == 0 and "1 done before, skipped" in err, err


def test_what_an_entry_vouches_for(tmp_path):
    import shutil

    from nirvision.cli.done_manifest import forget, record, verdict

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    src, out = tmp_path / "in" / "cam.mp4", tmp_path / "out" / "cam.mp4"
    src.write_bytes(b"source")
    out.write_bytes(b"output")
    ended = {"stopped_by": "end of input", "frames_out": 5, "pieces": [], "decode_errors": 0}
    assert not record(out, src, {**ended, "stopped_by": "SIGTERM"}) and not record(out, src, {**ended, "stopped_by": "preview closed"})
    assert not record(out, src, {**ended, "pieces": [str(out)]}) and not (tmp_path / "out" / MANIFEST).exists()  # --segment
    assert verdict(src, out, None) is None  # no record: the caller counts frames
    assert record(out, src, ended)
    assert verdict(src, out, None) == (True, f"{out} was finished from it: 5 frames")
    # the export moved (another mount point): the same name, size and time are the same file
    (tmp_path / "mnt").mkdir()
    shutil.copy2(src, tmp_path / "mnt" / "cam.mp4")
    assert verdict(tmp_path / "mnt" / "cam.mp4", out, None)[0] is True
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cam.mp4").write_bytes(b"another")
    assert verdict(tmp_path / "b" / "cam.mp4", out, None) == (False, f"{out} was colorized from another source, {src.resolve()}")
    # an entry not as written here says nothing; nor one whose output was rewritten, or forgotten
    data = json.loads((tmp_path / "out" / MANIFEST).read_text())
    data["outputs"]["cam.mp4"]["frames"] = "5"
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(data))
    assert verdict(src, out, None) is None
    assert record(out, src, ended)
    out.write_bytes(b"output, rewritten")
    assert verdict(src, out, None) is None
    assert record(out, src, ended)
    forget(out)
    assert verdict(src, out, None) is None and entries(tmp_path / "out") == {}
