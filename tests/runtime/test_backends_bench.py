"""``nirvision bench`` and ``nirvision export`` from the command line (small sizes, lite model)."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from nirvision.cli import main


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """The load average of an idle machine: these tests share their cores with others, and a
    busy machine adds a warning (tested on its own below)."""
    monkeypatch.setattr("nirvision.runtime.backends.timing.load_average", lambda: 0.25)


@pytest.fixture(scope="module")
def nir_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("nir")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(root / f"{i}.png"), rng.integers(0, 255, (40, 50), dtype=np.uint8))
    return root


def test_bench_writes_records_for_backends_and_engine(tmp_path, nir_folder, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--backends", "eager,onnxruntime", "--precisions", "fp32,int8", "--sizes", "64x48",
                 "--count", "3", "--warmup", "1", "--threads", "1", "--frames", str(nir_folder),
                 "--cache", str(tmp_path / "cache"), "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    by = {(r["backend"], r["precision"]): r for r in records}
    for key in ("backend", "precision", "size", "fps", "ms_per_frame", "psnr_vs_fp32"):
        assert all(key in r for r in records)
    eager, ort = by[("eager", "fp32")], by[("onnxruntime", "fp32")]
    assert eager["speedup_vs_eager_fp32"] == 1.0 and eager["psnr_vs_fp32"] == 100.0
    assert ort["fps"] > 0 and ort["psnr_vs_fp32"] > 60 and ort["size"] == "64x48"
    assert "python -m calibrate" in by[("onnxruntime", "int8")]["skipped"]
    engine = [r for r in records if r["backend"].startswith("engine[")]
    assert len(engine) == 1 and engine[0]["fps"] > 0 and engine[0]["engine_over_bare"] > 0
    assert {"decode", "infer", "encode"} <= set(engine[0]["stage_ms"]) and engine[0]["stage_ms"]["infer"] > 0
    # the rate each row reached: the lite chain's FLOPs at 64x48 (counted on the real network) x FPS
    from nirvision.api import load_chain
    from nirvision.models.profile import count_flops

    gflop = count_flops(load_chain()[0], (1, 1, 48, 64)) / 1e9
    for r in (eager, ort, engine[0]):
        assert r["gflop_per_frame"] == pytest.approx(gflop, rel=1e-3)
        assert r["gflops"] == pytest.approx(gflop * r["fps"], rel=1e-2)
    assert eager["matmul_gflops"] > 0 and len({r["matmul_gflops"] for r in records if not r["skipped"]}) == 1
    printed = capsys.readouterr()
    table = printed.out
    assert "ms/frame" in table and "engine[" in table and "GFLOP/s" in table
    # progress on stderr (not a terminal here: building, a quarter of the turns at a time, the engine)
    progress = printed.err.splitlines()
    assert "nirvision bench: 64x48: building onnxruntime fp32 (warm-up and any export or compile, untimed)" in progress
    assert progress.count("nirvision bench: 64x48: timed 3/3 frames of every row") == 1
    assert any(line.startswith("nirvision bench: 64x48: the engine with onnxruntime") for line in progress)


def test_bench_at_an_odd_size_runs_every_row_at_the_engines_even_size(tmp_path, capsys):
    # H.264 (yuv420p) needs even sides: the engine's clip is 34x26, so the backends are timed
    # (and warmed) on 34x26 too, and the engine's FPS is divided by a bare FPS of its own size
    out, cache = tmp_path / "bench.json", tmp_path / "cache"
    code = main(["bench", "--backends", "eager,onnxruntime", "--precisions", "fp32", "--sizes", "33x25", "--count", "2",
                 "--warmup", "1", "--threads", "1", "--engine-frames", "6", "--cache", str(cache), "--json", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    records = json.loads(out.read_text())
    assert {(r["size"], r["size_asked"]) for r in records} == {("34x26", "33x25")}
    assert any(r["backend"] == "engine[onnxruntime]" for r in records)
    graphs = [json.loads(p.read_text())["key"]["shape"] for p in (cache / "onnx-u8").glob("*.onnx.json")]
    assert graphs == [[1, 1, 26, 34]]  # one graph, built while warming up: none inside the engine's timed run
    assert "nirvision bench: 33x25: rounded up to 34x26 (H.264 in yuv420p needs even sides; every row runs at 34x26)" in printed.err
    # without the engine nothing needs even sides: the size asked is the size timed
    assert main(["bench", "--backends", "eager", "--sizes", "33x25", "--count", "2", "--warmup", "0", "--no-engine",
                 "--threads", "1", "--quiet", "--json", str(out)]) == 0
    assert [(r["size"], r["size_asked"]) for r in json.loads(out.read_text())] == [("33x25", None)]


def test_bench_times_onnxruntime_workers_beside_one_session(tmp_path, nir_folder, capsys):
    import torch

    out = tmp_path / "bench.json"
    code = main(["bench", "--backends", "eager,onnxruntime", "--sizes", "64x48", "--count", "4", "--warmup", "1", "--threads", "2",
                 "--workers", "1,2", "--frames", str(nir_folder), "--cache", str(tmp_path / "cache"), "--engine-frames", "12",
                 "--engine-clip", "cuts", "--double-buffer", "both", "--preset", "ultrafast", "--json", str(out)])
    torch.set_num_threads(1)
    assert code == 0
    records = json.loads(out.read_text())
    rows = {(r["backend"], r["workers"]) for r in records}
    assert ("eager", 1) in rows and ("eager", 2) not in rows  # eager cannot be copied: no 2-worker row
    assert sum(r["backend"] == "eager" for r in records) == 1  # no CUDA pipeline on the CPU: --double-buffer adds no rows
    assert all(r["double_buffer"] is None for r in records)
    two = next(r for r in records if r["backend"] == "onnxruntime" and r["workers"] == 2)
    assert two["fps"] > 0 and two["psnr_vs_fp32"] > 60 and two["threads"] == 2
    engine = next(r for r in records if r["backend"].startswith("engine["))
    assert engine["frames"] == 12 and "cuts" in engine["frames_source"]
    assert engine["cpu_ms"]["bare_ms_per_frame"] > 0 and engine["cpu_ms"]["process_ms_per_frame"] > 0
    assert engine["encoder"] == "libx264 ultrafast crf 20, 1 thread"  # the sink's settings, as colorize gives them on the CPU
    assert all(r["encoder"] is None for r in records if r is not engine)
    table = capsys.readouterr().out
    assert "x2 workers" in table and "engine rows: H.264 clip in, libx264 ultrafast crf 20, 1 thread out" in table
    # 4 frames with 2 workers make one turn (of up to 8): no median (it would be the mean), and the table says why
    timed = [r for r in records if not r["backend"].startswith("engine[")]
    assert all(r["turns"] == 1 and r["ms_median"] is None for r in timed)
    assert "'-' with fewer than 3 turns" in table
    # the backend column fits its longest name: every row's numbers stand under their headings
    lines = table.splitlines()
    header = next(ln for ln in lines if "ms/frame" in ln)
    rows = [ln for ln in lines if ln.lstrip().startswith("64x48")]
    for heading in ("ms/frame", "FPS", "eng/bare"):
        end = header.index(heading) + len(heading)
        assert all(ln[end - 1] != " " and (len(ln) == end or ln[end] == " ") for ln in rows), heading
    # what the machine was doing: the load average around the turns (here an idle machine's), the CPU each row used
    for r in records:
        assert (r["load_before"], r["load_after"], r["cpus"]) == (0.25, 0.25, os.cpu_count())
        assert r["cpu_ms_per_frame"] > 0 and r["load_others"] <= 0.25
    assert main(["bench", "--workers", "1,none"]) == 2
    assert main(["bench", "--preset", "quick"]) == 2
    assert "--preset 'quick': expected one of: ultrafast" in capsys.readouterr().err


def test_pan_clip_moves_slowly_over_each_image():
    from nirvision.runtime.backends.timing import PAN_HOLD, clip_frames

    rng = np.random.default_rng(1)
    images = np.stack([cv2.resize(rng.integers(0, 256, (6, 8), dtype=np.uint8), (64, 48), interpolation=cv2.INTER_CUBIC) for _ in range(2)])
    pan = clip_frames(images, 2 * PAN_HOLD + 3, "pan")
    assert pan.shape == (2 * PAN_HOLD + 3, 48, 64) and pan.dtype == np.uint8
    step = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()  # noqa: E731
    within = [step(pan[i], pan[i + 1]) for i in range(PAN_HOLD - 1)]
    cut = step(pan[PAN_HOLD - 1], pan[PAN_HOLD])
    assert max(within) < cut / 2  # consecutive frames of a shot are alike; a new image is not
    assert step(pan[0], pan[PAN_HOLD - 1]) > 0  # and the view does move
    assert np.array_equal(clip_frames(images, 5, "cuts"), images[[0, 1, 0, 1, 0]])
    with pytest.raises(ValueError, match="pan, cuts"):
        clip_frames(images, 3, "zoom")


def test_bench_synthetic_frames_and_bad_options(tmp_path, capsys):
    assert main(["bench", "--backends", "eager", "--sizes", "32x32", "--count", "2", "--warmup", "0", "--no-engine", "--threads", "1", "--quiet"]) == 0
    printed = capsys.readouterr()
    assert "synthetic" in printed.out and printed.err == ""  # --quiet: no progress lines
    assert main(["bench", "--backends", "warp-drive"]) == 2
    assert main(["bench", "--sizes", "640by480"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["bench", "--sizes", "64x48,7x5"]) == 2  # refused before anything is timed
    assert "nirvision bench: error: --sizes 7x5: width and height must lie in 8..8192" in capsys.readouterr().err
    assert main(["export", "--sizes", "0x480"]) == 2
    assert "--sizes 0x480: width and height" in capsys.readouterr().err


def test_export_builds_onnx_ahead_of_time(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["export", "--backend", "onnxruntime", "--sizes", "48x32", "--cache", str(cache), "--device", "cpu"]) == 0
    # what the engine runs: the graph that takes uint8 frames
    (onnx,) = (cache / "onnx-u8").glob("*.onnx")
    out = capsys.readouterr().out
    assert out.startswith(f"onnxruntime fp32 48x32 (batch 1): {onnx.absolute()} (built in ") and out.endswith(" s)\n")
    # again: the file is found, and said so
    assert main(["export", "--backend", "onnxruntime", "--sizes", "48x32", "--cache", str(cache), "--device", "cpu"]) == 0
    assert capsys.readouterr().out == f"onnxruntime fp32 48x32 (batch 1): {onnx.absolute()} (cached)\n"
    assert len(list((cache / "onnx-u8").glob("*.onnx"))) == 1


def test_export_tensorrt_without_gpu_exits_2(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the message on machines without CUDA")
    assert main(["export", "--backend", "tensorrt", "--precision", "fp16", "--sizes", "64x64", "--random-init", "--device", "cpu"]) == 2
    assert "CUDA" in capsys.readouterr().err


def test_engine_clip_holds_the_benchmark_frames(tmp_path):
    import av

    from nirvision.runtime.backends.timing import write_clip

    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (6, 8), dtype=np.uint8), (48, 32), interpolation=cv2.INTER_CUBIC)
    frames = np.stack([np.roll(base, 3 * i, axis=1) for i in range(3)])
    clip = write_clip(tmp_path / "c.mp4", frames, 7)
    with av.open(str(clip)) as f:
        decoded = [vf.to_ndarray(format="gray") for vf in f.decode(video=0)]
    assert len(decoded) == 7
    for i, d in enumerate(decoded):
        assert d.shape == (32, 48)
        assert np.abs(d.astype(int) - frames[i % 3].astype(int)).mean() < 3.0  # the same frames, cycled


def test_chain_gflop_counts_without_touching_the_network():
    import torch

    from nirvision.api import load_chain
    from nirvision.models.profile import count_flops
    from nirvision.runtime.backends.timing import chain_gflop

    net = load_chain()[0]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert chain_gflop(net, 128, 192) == pytest.approx(count_flops(net, (1, 1, 128, 192)) / 1e9)
    # four times the pixels, four times the work (all but the attention's 1x1 convs on pooled rows
    # and columns, which grow with H + W)
    assert chain_gflop(net, 512, 512) == pytest.approx(4 * chain_gflop(net, 256, 256), rel=1e-2)
    after = net.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())


def _bars(img: np.ndarray, bgr) -> list[int]:
    """Lengths (px) of the solid bars of colour ``bgr``, top to bottom."""
    mask = np.all(img == np.array(bgr, np.uint8), axis=2)
    lengths, inside = [], False
    for row in mask:
        n = int(row.sum())
        if n and not inside:
            lengths.append(n)
        inside = bool(n)
    return lengths


def test_bench_chart_draws_each_row_as_a_bar_scaled_per_size(tmp_path):
    from nirvision.runtime.backends.timing import BenchRecord
    from nirvision.visual import BARE_BGR, ENGINE_BGR, save_bench_chart

    rows = [BenchRecord("lite", "eager", "fp32", "256x256", 8, fps=20.0, speedup_vs_eager_fp32=1.0),
            BenchRecord("lite", "onnxruntime", "fp32", "256x256", 8, fps=100.0, speedup_vs_eager_fp32=5.0, workers=2),
            BenchRecord("lite", "onnxruntime", "int8", "256x256", 8, skipped="run python -m calibrate first"),
            BenchRecord("lite", "engine[onnxruntime]", "fp32", "256x256", 8, fps=70.0, engine_over_bare=0.7),
            BenchRecord("lite", "eager", "fp32", "640x480", 8, fps=10.0, speedup_vs_eager_fp32=1.0),
            BenchRecord("lite", "onnxruntime", "fp32", "640x480", 8, fps=30.0, speedup_vs_eager_fp32=3.0)]
    save_bench_chart(tmp_path / "chart.png", rows)
    img = cv2.imread(str(tmp_path / "chart.png"))
    bare, engine = _bars(img, BARE_BGR), _bars(img, ENGINE_BGR)
    assert len(bare) == 4 and len(engine) == 1  # the skipped row has no bar
    longest = bare[1]  # each size's fastest row is the full length
    assert bare[3] == longest
    assert bare[0] / longest == pytest.approx(0.2, abs=0.01) and engine[0] / longest == pytest.approx(0.7, abs=0.01)
    assert bare[2] / longest == pytest.approx(1 / 3, abs=0.01)


def test_bench_plot_from_the_command_line_and_a_bad_plot_name_said_first(tmp_path, capsys):
    chart = tmp_path / "charts" / "bench.png"
    assert main(["bench", "--backends", "eager", "--sizes", "32x32,48x32", "--count", "2", "--warmup", "0", "--no-engine", "--threads", "1",
                 "--quiet", "--plot", str(chart)]) == 0
    assert f"chart written to {chart}" in capsys.readouterr().out
    from nirvision.visual import BARE_BGR

    assert len(_bars(cv2.imread(str(chart)), BARE_BGR)) == 2  # one row for each size
    assert main(["bench", "--backends", "eager", "--sizes", "32x32", "--plot", str(tmp_path / "bench.txt")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "bench.txt").exists()


def test_bench_and_export_refuse_bad_options_before_any_work(tmp_path, capsys, monkeypatch):
    import nirvision.api

    monkeypatch.setattr(nirvision.api, "load_chain", lambda *a, **k: pytest.fail("work started before the options were checked"))
    (tmp_path / "afile").write_text("x")
    cases = [
        (["bench", "--json", str(tmp_path)], f"--json {tmp_path}: is a folder"),
        (["bench", "--json", str(tmp_path / "afile" / "b.json")], f"{tmp_path / 'afile'} is a file, not a folder"),
        (["bench", "--sizes", ","], "--sizes ',': nothing given"),
        (["bench", "--threads", "0"], "--threads 0: expected 1 to 1024"),
        (["bench", "--count", "0"], "--count 0: expected at least 1"),
        (["export", "--sizes", ","], "--sizes ',': nothing given"),
        (["export", "--sizes", "64x48", "--batch", "100000"], "--batch 100000: expected 1 to 64"),
        (["export", "--sizes", "64x48", "--model", "paper"], "--model paper: the bundled weights are lite"),
        (["demo", "--size", "64by48", "-o", str(tmp_path / "d")], "--size '64by48': not WIDTHxHEIGHT"),
        (["demo", "--fps", "0", "-o", str(tmp_path / "d")], "--fps 0: expected a frame rate of at least 1"),
    ]
    for argv, says in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_a_cache_folder_that_is_a_file_is_refused_before_outputs_open(tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "afile"))
    out = tmp_path / "o.mp4"
    assert main(["colorize", "synthetic:32x32@25:2", "-o", str(out), "--backend", "onnxruntime", "--model", "lite", "--workers", "1"]) == 2
    assert f"artefact cache {tmp_path / 'afile'}: is a file, not a folder" in capsys.readouterr().err and not out.exists()
    assert main(["export", "--sizes", "32x32", "--cache", str(tmp_path / "afile" / "sub")]) == 2
    assert f"{tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err


def test_bench_lists_time_each_entry_once_and_bad_frames_are_named(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--backends", "eager,eager", "--sizes", "32x32,32x32", "--count", "1", "--warmup", "0", "--no-engine", "--threads", "1",
                 "--quiet", "--json", str(out)]) == 0
    assert [(r["backend"], r["size"]) for r in json.loads(out.read_text())] == [("eager", "32x32")]
    (tmp_path / "f").mkdir()
    cv2.imwrite(str(tmp_path / "f" / "c.tif"), np.full((20, 20), 3.0, np.float32))
    capsys.readouterr()
    assert main(["bench", "--backends", "eager", "--sizes", "32x32", "--count", "1", "--no-engine", "--frames", str(tmp_path / "f"), "--quiet"]) == 2
    assert f"benchmark frame {tmp_path / 'f' / 'c.tif'}: float frames must lie in [0, 1]" in capsys.readouterr().err


def test_load_warning_counts_other_processes_against_the_cores_left_free():
    from nirvision.runtime.backends.timing import OwnLoad, load_warning

    assert load_warning(None, None, 2, 2) is None  # no load average on this system
    assert load_warning(0.3, 0.3, 2, 2) is None  # an idle machine
    assert load_warning(1.2, 1.0, 2, 2) is None  # within the margin
    text = load_warning(4.8, 2.9, 2, 2)
    assert text.startswith("load average 4.8 on 2 cores, about 2.9 of it from other processes (the bench runs 2 threads)")
    assert "the ratios over eager are not reliable" in text
    assert load_warning(6.0, 5.0, 16, 4) is None  # others on cores the bench leaves free
    assert load_warning(16.0, 14.0, 16, 4) is not None
    own = OwnLoad()
    assert 0.0 <= own() < 1.0  # this process's share of the 1-minute average builds up over a minute


def test_a_busy_machine_is_said_and_recorded(tmp_path, capsys, monkeypatch):
    from nirvision.runtime.backends import timing

    loads = iter([3.9, 4.1, 4.8])  # run start, before and after the turns (the bench itself barely counted yet)
    monkeypatch.setattr(timing, "load_average", lambda: next(loads))
    monkeypatch.setattr(timing, "machine_cpus", lambda: 2)
    out = tmp_path / "b.json"
    assert main(["bench", "--backends", "eager", "--sizes", "32x32", "--count", "2", "--warmup", "0", "--no-engine", "--threads", "2",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr()
    err = printed.err.splitlines()
    assert err[0].startswith("nirvision bench: load average 3.9 on 2 cores, about 3.9 of it from other processes (the bench runs 2 threads)")
    assert err[-1].startswith("nirvision bench: warning: load average 4.8 on 2 cores, about ")
    (r,) = json.loads(out.read_text())
    assert (r["load_before"], r["load_after"], r["cpus"]) == (4.1, 4.8, 2)
    assert 3.8 < r["load_others"] <= 4.8 and r["cpu_ms_per_frame"] > 0
    assert r["turns"] == 2 and r["ms_median"] is None  # two turns: no median
    # --quiet: no progress (nor the first warning), but the numbers are still said to be unreliable
    loads = iter([3.9, 4.1, 4.8])
    assert main(["bench", "--backends", "eager", "--sizes", "32x32", "--count", "3", "--warmup", "0", "--no-engine", "--threads", "2",
                 "--quiet", "--json", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("nirvision bench: warning: load average 4.8 on 2 cores")
    (r,) = json.loads(out.read_text())
    assert r["turns"] == 3 and r["ms_median"] > 0


def test_the_table_fits_long_backend_names_and_says_why_a_median_is_missing(capsys, monkeypatch):
    from nirvision.runtime.backends import timing
    from nirvision.runtime.backends.timing import BenchRecord

    def records(*args, **kwargs):
        common = dict(threads=2, matmul_gflops=50.0, gflops=1.0, psnr_vs_fp32=60.0, ae_vs_fp32=0.01)
        return [BenchRecord("lite", "eager", "fp32", "64x48", 4, fps=10.0, ms_per_frame=100.0, ms_median=None, turns=1,
                            speedup_vs_eager_fp32=1.0, **common),
                BenchRecord("lite", "onnxruntime", "fp32", "64x48", 4, fps=100.0, ms_per_frame=10.0, ms_median=9.5, turns=4,
                            speedup_vs_eager_fp32=10.0, workers=2, **common),
                BenchRecord("lite", "engine[onnxruntime]", "fp32", "64x48", 40, fps=80.0, ms_per_frame=12.5, speedup_vs_eager_fp32=8.0,
                            engine_over_bare=0.8, workers=2, threads=2, matmul_gflops=50.0)]

    monkeypatch.setattr(timing, "run_bench", records)
    assert main(["bench", "--sizes", "64x48"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(ln for ln in lines if "ms/frame" in ln)
    rows = [ln for ln in lines if ln.lstrip().startswith("64x48")]
    assert rows[2].split()[:4] == ["64x48", "engine[onnxruntime]", "x2", "workers"]
    for heading in ("prec", "ms/frame", "median", "FPS", "x eager", "eng/bare"):
        end = header.index(heading) + len(heading)
        assert all(ln[end - 1] != " " and (len(ln) == end or ln[end] == " ") for ln in rows), heading
    assert rows[0].split()[3:5] == ["100.0", "-"] and rows[1].split()[5:7] == ["10.0", "9.5"]
    assert any(ln.startswith("median: over the turns") and "'-' with fewer than 3 turns" in ln for ln in lines)
