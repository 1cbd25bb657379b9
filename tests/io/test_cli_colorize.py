"""``nirvision colorize`` and ``nirvision demo`` end to end: outputs, bad inputs, signals."""
import json
import re
import signal

import cv2
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.models import save_checkpoint
from nirvision.api import load_chain
from tests.io.media import corrupt_packets, make_clip, progress_past, read_video, run_cli, start_cli, wait_for


def colorize(capsys, *args):
    code = main(["colorize", *map(str, args), "--threads", "1", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_colorize_file_with_stats_json(tmp_path, tiny_model, capsys):
    pts = [0, 40, 80, 200, 240, 500]
    make_clip(tmp_path / "in.mp4", pts, audio_packets=6)
    code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--model", tiny_model, "--side-by-side", "--stats-json", tmp_path / "s.json")
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_in"] == stats["frames_out"] == 6 and stats["dropped"] == 0
    assert set(stats["latency_ms"]) >= {"decode", "pre", "infer", "post", "encode"}
    out, src = read_video(tmp_path / "out.mp4"), read_video(tmp_path / "in.mp4")
    assert out["times"] == pytest.approx([p / 1000 for p in pts], abs=1e-6)
    assert out["sizes"] == [(48, 128)] * 6
    assert out["audio"] == src["audio"]
    assert "6 frames" in err


def test_a_failed_run_replaces_an_earlier_stats_file_with_its_error(tmp_path, tiny_model, capsys, monkeypatch):
    stats = tmp_path / "s.json"
    stats.write_text(json.dumps({"frames_out": 99, "stopped_by": "end of input"}))  # an earlier run's
    # failing before the engine runs: the source cannot be opened (a password stays out of it)
    code, _, err = colorize(capsys, "rtsp://cam:s3cret@127.0.0.1:9/x", "-o", tmp_path / "o.mp4", "--model", tiny_model,
                            "--stats-json", stats, "--open-timeout", "0.5", "--reconnect", "0")
    record = json.loads(stats.read_text())
    assert code == 2 and record["stopped_by"] == "error" and record["frames_out"] == 0
    assert record["error"] in err and "s3cret" not in stats.read_text() and record["source"] == "rtsp://cam:***@127.0.0.1:9/x"
    # failing in the engine: what was written is counted, and the error said
    make_clip(tmp_path / "in.mp4", [0, 40, 80, 120])

    import nirvision.runtime.engine as engine

    submit = engine.Engine._submit

    def fail_third(self, frame):
        if frame.index == 2:
            raise RuntimeError("the backend broke")
        return submit(self, frame)

    monkeypatch.setattr(engine.Engine, "_submit", fail_third)
    code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--model", tiny_model, "--stats-json", stats, "--workers", "1")
    record = json.loads(stats.read_text())
    assert code == 1 and record["error"] == "RuntimeError: the backend broke" and record["stopped_by"] == "error"
    assert record["frames_out"] == len(read_video(tmp_path / "out.mp4")["times"]) == 2


def test_a_backend_that_cannot_run_leaves_an_earlier_output_as_it_was(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    make_clip(tmp_path / "in.mp4", [0, 40, 80])
    (tmp_path / "out.mp4").write_bytes(b"an earlier run's output")
    code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--model", tiny_model, "--backend", "onnxruntime", "--precision", "int8")
    assert code == 2 and "no calibrated int8 model for these weights at 64x48" in err and "python -m calibrate" in err
    assert "--weights CHECKPOINT" in err  # a random init, not the bundled weights: calibrate's default (the bundled) would not do
    assert (tmp_path / "out.mp4").read_bytes() == b"an earlier run's output"


def test_stats_json_never_replaces_a_source_or_an_output(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "in.mp4", [0, 40, 80])
    (tmp_path / "batch").mkdir()
    make_clip(tmp_path / "batch" / "a.mp4", [0, 40])
    before = {p: p.read_bytes() for p in (tmp_path / "in.mp4", tmp_path / "batch" / "a.mp4")}
    (tmp_path / "prev.mp4").write_bytes(b"an earlier output")
    runs = [  # the stats file is a source (also when the run is refused for another reason), an output, a batch's input
        ([tmp_path / "in.mp4", "-o", tmp_path / "o.mp4", "--stats-json", tmp_path / "in.mp4", "--crf", "99"], "is the source"),
        ([tmp_path / "in.mp4", "-o", tmp_path / "prev.mp4", "--stats-json", tmp_path / "prev.mp4"], "is an output"),
        ([tmp_path / "batch", "-o", tmp_path / "out", "--stats-json", tmp_path / "batch" / "a.mp4"], "is the source"),
    ]
    for args, needle in runs:
        code, _, err = colorize(capsys, *args, "--model", tiny_model)
        assert code == 2 and f"--stats-json {args[args.index('--stats-json') + 1]}: {needle}" in err, err
    assert all(p.read_bytes() == data for p, data in before.items()) and (tmp_path / "prev.mp4").read_bytes() == b"an earlier output"
    # a batch refused before its first video records why
    stats = tmp_path / "s.json"
    stats.write_text("{}")
    make_clip(tmp_path / "batch" / "b.mp4", [0, 40])
    code, _, err = colorize(capsys, tmp_path / "batch" / "a.mp4", tmp_path / "batch" / "b.mp4", "-o", tmp_path / "batch", "--model", tiny_model,
                            "--stats-json", stats)
    assert code == 2 and "would overwrite the source" in json.loads(stats.read_text())["error"]


def test_colorize_at_half_scale_writes_full_size_frames(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "in.mp4", [0, 40, 80, 120])
    code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", tmp_path / "out.mp4", "--model", tiny_model, "--infer-scale", "0.5",
                            "--stats-json", tmp_path / "s.json")
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_out"] == 4 and stats["backend"]["infer_scale"] == 0.5
    assert read_video(tmp_path / "out.mp4")["sizes"] == read_video(tmp_path / "in.mp4")["sizes"] == [(48, 64)] * 4
    assert "the model runs at 0.5 of each frame's width and height" in err


def test_corrupted_stream_is_counted_not_fatal(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "in.avi", list(range(0, 400, 40)), codec="mjpeg")
    corrupt_packets(tmp_path / "in.avi", [2, 5])
    code, _, err = colorize(capsys, tmp_path / "in.avi", "-o", tmp_path / "out", "--model", tiny_model, "--stats-json", tmp_path / "s.json")
    stats = json.loads((tmp_path / "s.json").read_text())
    assert code == 0 and stats["decode_errors"] == 2 and stats["frames_out"] == 8
    assert "2 undecodable and skipped" in err
    assert len(list((tmp_path / "out").glob("*.png"))) == 8


def bad_inputs(tmp_path, tiny_model):
    """(name, SOURCE, extra args, text the message must hold)."""
    make_clip(tmp_path / "good.mp4", list(range(0, 400, 40)))
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    import av

    with av.open(str(tmp_path / "zero.mp4"), "w") as out:  # a header and no frame
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    (tmp_path / "afile").write_text("")
    chain, config, _ = load_chain(model=str(tiny_model))
    save_checkpoint(tmp_path / "tiny.pt", config, {"nir_to_gray": chain.nir_to_gray, "colorizer": chain.colorizer})
    (tmp_path / "cut.pt").write_bytes((tmp_path / "tiny.pt").read_bytes()[:5000])  # a download that stopped
    good = tmp_path / "good.mp4"
    return [
        ("missing", tmp_path / "missing.mp4", [], "not found"),
        ("text", tmp_path / "text.mp4", [], "cannot be read as a video"),
        ("truncated", tmp_path / "truncated.mp4", [], "cannot be read as a video"),
        ("zero frames", tmp_path / "zero.mp4", [], "no video frames"),
        ("scheme", "gopher://user:hunter2@host/x", [], "unknown scheme"),
        ("camera", "/dev/video63", [], "does not exist"),
        ("unwritable", good, ["-o", tmp_path / "afile" / "out.mp4"], "cannot create its folder"),
        ("wrong model", good, ["--weights", tmp_path / "tiny.pt", "--model", "lite"], "does not fit the model"),
        ("truncated weights", good, ["--weights", tmp_path / "cut.pt"], "cut.pt: cannot be read (5000 bytes; truncated"),
        ("reconnect", good, ["--reconnect", "sometimes"], "--reconnect"),
        ("queue", good, ["--queue-size", "0"], "--queue-size"),
        ("preset", good, ["--preset", "quick"], "--preset"),
        ("encoder threads", good, ["--encoder-threads", "0"], "--encoder-threads"),
        ("levels", good, ["--levels", "bright"], "--levels 'bright': expected one of: off, auto, stretch"),
        ("infer scale", good, ["--infer-scale", "2"], "--infer-scale: infer scale '2': expected a number from 0.05 to 1"),
        ("workers", good, ["--workers", "many"], "--workers"),
        ("fp16 on the cpu", good, ["--precision", "fp16", "--device", "cpu"], "no backend runs fp16 on cpu"),
        ("rtsp password parameter", "rtsp://127.0.0.1:1/user=admin&password=hunter2&channel=1&stream=0.sdp", ["--reconnect", "0", "--open-timeout", "2"],
         "rtsp://127.0.0.1:1/user=admin&password=***&channel=1"),
        ("rtsp password with a slash", "rtsp://admin:hunter2/x@127.0.0.1:1/x", ["--reconnect", "0"], "rtsp://admin:***@127.0.0.1:1/x"),
        ("rtsp port", "rtsp://admin:hunter2@127.0.0.1:99999/x", ["--reconnect", "0"], "RTSP source rtsp://admin:***@127.0.0.1:99999/x: the port is not a number"),
    ]


def test_bad_inputs_exit_2_with_one_line(tmp_path, tiny_model, capsys):
    for name, source, extra, needle in bad_inputs(tmp_path, tiny_model):
        args = [source, *extra]
        if "-o" not in extra:
            args += ["-o", tmp_path / f"out-{name.replace(' ', '_')}.mp4"]
        if "--model" not in extra:
            args += ["--model", tiny_model]
        code, out, err = colorize(capsys, *args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (name, err)
        assert len(lines) == 1 and needle in lines[0], (name, err)
        assert lines[0].startswith("nirvision colorize: error: ") and "Traceback" not in err
        assert "hunter2" not in err
        assert not (tmp_path / f"out-{name.replace(' ', '_')}.mp4").exists(), name  # no stray output


def test_glob_output_into_its_own_folder_is_refused(tmp_path, tiny_model, capsys):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"n{i}.png"), np.full((24, 32), 40 * i, np.uint8))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, _, err = colorize(capsys, folder / "*.png", "-o", folder, "--model", tiny_model)
    assert code == 2 and err.strip().splitlines() == [f"nirvision colorize: error: output folder {folder}: would overwrite the source image {folder / 'n0.png'}; expected another folder"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the NIR originals are untouched


def test_disk_full_is_a_clear_error_not_a_crash(tmp_path, tiny_model):
    """The header write fails (/dev/full): exit 2 naming the output; muxing again in close()
    used to segfault the process (exit -11)."""
    (tmp_path / "full.mp4").symlink_to("/dev/full")
    r = run_cli(["colorize", "synthetic:64x48@10:20", "-o", "full.mp4", "--model", str(tiny_model), "--threads", "1", "--no-progress"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("nirvision colorize: error: output full.mp4: writing the header failed (No space left on device); "
                                                 "expected a writable path with free space")
    assert not (tmp_path / "full.mp4").is_symlink()  # the partial output is gone


def _file_size_limit():  # in the child: writes past 200 kB fail with EFBIG (SIGXFSZ ignored)
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))


def test_write_failing_mid_run_is_a_clear_error_and_leaves_no_partial_file(tmp_path, tiny_model):
    r = run_cli(["colorize", "synthetic:320x240@25:400", "-o", "out.mkv", "--model", str(tiny_model), "--threads", "1", "--no-progress"],
                cwd=tmp_path, preexec_fn=_file_size_limit)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "nirvision colorize: error: output out.mkv: writing failed (File too large); expected a writable path with free space"
    assert not (tmp_path / "out.mkv").exists()


def test_write_failing_mid_live_recording_keeps_what_reached_the_disk(tmp_path, tiny_model, suffix=".mp4"):
    # a live source cannot be played again: its recording (written in pieces that play) is kept
    r = run_cli(["colorize", "synthetic:320x240@25:400", "--live", "-o", f"rec{suffix}", "--model", str(tiny_model), "--threads", "1",
                 "--workers", "1", "--no-progress"], cwd=tmp_path, preexec_fn=_file_size_limit)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"nirvision colorize: error: output rec{suffix}: writing failed (File too large); "
                                                 "expected a writable path with free space")
    times = _frames_readable(tmp_path / f"rec{suffix}")
    assert len(times) >= 5 and times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))


def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video")
    r = run_cli(["colorize", "text.mp4", "-o", "out.mp4", "--model", "lite"], cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["nirvision colorize: error: video file text.mp4: cannot be read as a video (Invalid data found when processing input); expected a video file such as MP4, MKV, MOV or AVI"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])  # SIGHUP: the terminal or ssh session closed
def test_signal_mid_file_leaves_a_playable_output(tmp_path, tiny_model, sig):
    n = 400
    make_clip(tmp_path / "in.mp4", [40 * i for i in range(n)], audio_packets=40)
    proc = start_cli(["colorize", "in.mp4", "-o", "out.mp4", "--model", str(tiny_model), "--threads", "1",
                      "--status-interval", "0.1", "--stats-json", "s.json"], cwd=tmp_path)
    wait_for(progress_past(proc, n), 120, "a progress line with five frames written")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert 0 < stats["frames_out"] < n and stats["stopped_by"] == sig.name
    out = read_video(tmp_path / "out.mp4")  # decodes to the end without an error
    assert len(out["times"]) == stats["frames_out"]
    assert out["times"] == pytest.approx([0.04 * i for i in range(stats["frames_out"])], abs=1e-6)


def test_a_hangup_that_nohup_ignores_stays_ignored(tmp_path, tiny_model):
    n = 400
    make_clip(tmp_path / "in.mp4", [40 * i for i in range(n)])
    proc = start_cli(["colorize", "in.mp4", "-o", "out.mp4", "--model", str(tiny_model), "--threads", "1", "--status-interval", "0.1",
                      "--stats-json", "s.json"], cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for(progress_past(proc, n), 120, "a progress line with five frames written")
    proc.send_signal(signal.SIGHUP)
    wait_for(progress_past(proc, n, 20), 120, "frames written after the hangup")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert json.loads((tmp_path / "s.json").read_text())["stopped_by"] == "SIGTERM"


def _frames_readable(path) -> list[float]:
    """The frame times (s) that decode from ``path`` now, stopping quietly at a broken end."""
    import av

    times: list[float] = []
    try:
        with av.open(str(path)) as c:
            for f in c.decode(video=0):
                times.append(float(f.pts * f.time_base))
    except (av.error.FFmpegError, OSError):
        pass
    return times


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_killed_live_recording_plays_up_to_its_last_second(tmp_path, tiny_model, suffix):
    # kill -9 / power loss: close() never runs, so the recording must be readable as it grows
    out = tmp_path / f"rec{suffix}"
    proc = start_cli(["colorize", "synthetic:96x64@25:100000", "--live", "-o", out.name, "--model", str(tiny_model),
                      "--threads", "1", "--workers", "1", "--no-progress"], cwd=tmp_path)
    try:
        wait_for(lambda: proc.poll() is None and out.exists() and len(_frames_readable(out)) >= 40, 120,
                 "a growing recording that already plays 40 frames")
        before = len(_frames_readable(out))
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    times = _frames_readable(out)
    assert len(times) >= before >= 40
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))  # live drops leave gaps, never reorder


def test_demo_writes_video_and_side_by_side_png(tmp_path, tiny_model, capsys):
    import cv2

    code = main(["demo", "-o", str(tmp_path / "d"), "--model", str(tiny_model), "--size", "64x48", "--frames", "5", "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "fps" in out and "random" in err
    assert len(read_video(tmp_path / "d" / "demo.mp4")["times"]) == 5
    png = cv2.imread(str(tmp_path / "d" / "demo_side_by_side.png"))
    assert png.shape == (48, 128, 3)
    assert not np.array_equal(png[:, :64], png[:, 64:])


def test_demo_without_bundled_weights_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import nirvision.api

    monkeypatch.setattr(nirvision.api, "default_weights_path", lambda: tmp_path / "none.pt")
    code = main(["demo", "-o", str(tmp_path / "d")])
    _, err = capsys.readouterr()
    assert code == 2 and "no bundled weights" in err and len(err.strip().splitlines()) == 1


def test_progress_bar_for_files_and_status_line_for_live():
    import io

    from nirvision.cli.colorize import Progress

    out = io.StringIO()
    bar = Progress(out)
    base = {"frames_out": 50, "dropped": 0, "decode_errors": 0, "reconnects": 0, "fps": 10.0, "elapsed_s": 5.0}
    bar({**base, "live": False, "frames_total": 200})
    bar({**base, "live": True, "frames_total": None, "dropped": 7, "reconnects": 2})
    file_line, live_line = out.getvalue().splitlines()
    assert file_line.startswith("[######..................] 50/200  25.0%") and "eta 15 s" in file_line
    assert "dropped 7" in live_line and "reconnects 2" in live_line and "/" not in live_line


def test_the_source_as_an_output_is_refused_before_any_output_is_opened(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "in.mp4", [0, 40, 80])
    (tmp_path / "prev.mp4").write_bytes(b"an earlier result")
    code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", tmp_path / "prev.mp4", "-o", tmp_path / "in.mp4", "--model", tiny_model)
    assert code == 2 and "is the source itself" in err
    assert (tmp_path / "prev.mp4").read_bytes() == b"an earlier result"
    source = (tmp_path / "in.mp4").read_bytes()
    # the same file by another name: through a folder not made yet, a hard link
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link.mp4").hardlink_to(tmp_path / "in.mp4")
    for other in (tmp_path / "new" / ".." / "in.mp4", tmp_path / "sub" / "link.mp4"):
        code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", other, "--model", tiny_model)
        assert code == 2 and f"output {other}: is the source itself" in err
    assert (tmp_path / "in.mp4").read_bytes() == source and not (tmp_path / "new").exists()


def test_an_output_given_twice_is_refused_before_anything_is_opened(tmp_path, tiny_model, capsys):
    make_clip(tmp_path / "in.mp4", [0, 40, 80])
    (tmp_path / "v").mkdir()
    code, _, err = colorize(capsys, tmp_path / "in.mp4", "-o", tmp_path / "x.mp4", "-o", tmp_path / "v" / ".." / "x.mp4", "--model", tiny_model)
    assert code == 2 and "x.mp4: given twice" in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_the_closing_line_of_a_slow_run_gives_seconds_a_frame():
    from nirvision.cli.colorize import describe

    base = {"wall_s": 87.0, "stopped_by": "end of input", "sinks": ["o.mp4"]}
    assert describe({**base, "frames_out": 2, "fps": 0.023}).startswith("2 frames in 87.0 s (43.5 s a frame) -> o.mp4")
    assert describe({**base, "frames_out": 200, "fps": 2.3}).startswith("200 frames in 87.0 s (2.3 fps)")
    assert describe({**base, "frames_out": 0, "fps": 0.0}).startswith("0 frames in 87.0 s (0.0 fps)")


def test_write_failing_as_an_mkv_is_finished_is_a_clear_error_and_leaves_no_partial_file(tmp_path, tiny_model):
    # MKV holds a short clip's one cluster until the end: the write fails in the finishing
    r = run_cli(["colorize", "synthetic:320x240@25:20", "-o", "out.mkv", "--model", str(tiny_model), "--threads", "1", "--crf", "0",
                 "--no-progress"], cwd=tmp_path, preexec_fn=_file_size_limit)
    assert r.returncode == 2, r.stderr
    # the last cluster is written as the file is finished (or, where the encoder's last packets
    # fill a cluster first, as they are written): either way the same clear error
    assert re.fullmatch(r"nirvision colorize: error: output out\.mkv: (finishing|writing) failed \(File too large\); "
                        r"expected a writable path with free space", r.stderr.strip().splitlines()[-1]), r.stderr
    assert "Traceback" not in r.stderr and "ERROR" not in r.stderr
    assert not (tmp_path / "out.mkv").exists()


def _colorize_quietly(capsys, *args):
    code = main(["colorize", *map(str, args), "--threads", "1", "--workers", "1", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_fps_is_refused_for_a_video_and_applies_to_images(tmp_path, tiny_model, capsys):
    colorize = _colorize_quietly
    make_clip(tmp_path / "a.mp4", [0, 40])
    code, _, err = colorize(capsys, tmp_path / "a.mp4", "-o", tmp_path / "o.mp4", "--model", tiny_model, "--fps", "10", "--stats-json", tmp_path / "s.json")
    assert code == 2 and f"--fps 10: the frame rate given to image folders and globs (and asked of a camera); source {tmp_path / 'a.mp4'} is a video file" in err, err
    assert not (tmp_path / "o.mp4").exists() and json.loads((tmp_path / "s.json").read_text())["stopped_by"] == "error"
    code, _, err = colorize(capsys, "synthetic:64x48:3", "-o", tmp_path / "s.mp4", "--model", tiny_model, "--fps", "10")
    assert code == 2 and "synthetic:WIDTHxHEIGHT@FPS" in err
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.zeros((48, 64), np.uint8))
    code, _, err = colorize(capsys, tmp_path / "imgs", "-o", tmp_path / "i.mp4", "--model", tiny_model, "--fps", "0")
    assert code == 2 and "--fps 0: expected a frame rate of at least 0.001 and at most 1000" in err
    code, _, err = colorize(capsys, str(tmp_path / "imgs" / "*.png"), "-o", tmp_path / "i.mp4", "--model", tiny_model, "--fps", "10")
    assert code == 0 and read_video(tmp_path / "i.mp4")["times"] == pytest.approx([0, 0.1, 0.2], abs=1e-6), err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_the_model_loads_is_recorded_as_stopped(tmp_path, tiny_model, capsys, monkeypatch, sig):
    import os
    import time

    import nirvision.cli.colorize as colorize_cli

    real = colorize_cli.build_backend

    def slow_build(*args, **kwargs):  # the signal comes while the backend is being built
        os.kill(os.getpid(), sig)
        time.sleep(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(colorize_cli, "build_backend", slow_build)
    (tmp_path / "s.json").write_text('{"stopped_by": "end of input", "frames_out": 99}')  # an earlier run's
    with pytest.raises(SystemExit) as stop:
        main(["colorize", "synthetic:64x48@10:5", "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_model), "--stats-json", str(tmp_path / "s.json")])
    assert stop.value.code == 128 + sig
    assert f"stopped by {sig.name} while starting" in capsys.readouterr().err
    assert json.loads((tmp_path / "s.json").read_text())["stopped_by"] == sig.name  # not the earlier run's
    assert signal.getsignal(sig) is not None and not (tmp_path / "o.mp4").exists()
