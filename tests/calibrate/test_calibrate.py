"""INT8 calibration writes a model the onnxruntime backend runs; the report compares precisions."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from calibrate.__main__ import main
from calibrate.frames import FramesError, load_nir_frames, load_paired, parse_size, parse_sizes
from calibrate.quantize import quantize_int8
from calibrate.report import precision_report
from tests.helpers import nir_frames, tiny_chain
from nirvision.errors import InputError
from nirvision.runtime.backends import BackendUnavailable, create_backend
from nirvision.runtime.backends.compare import mean_psnr
from nirvision.runtime.cache import ArtefactCache

INT8_MIN_PSNR = 25.0  # dB, int8 vs fp32 outputs of a random-init tiny chain on NIR-like frames




@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    (root / "nir").mkdir()
    (root / "rgb").mkdir()
    for i, img in enumerate(nir_frames(6, 40, 48)):
        cv2.imwrite(str(root / "nir" / f"f{i:02d}.png"), img)
        rgb = np.stack([img, 255 - img, img // 2], axis=-1)
        cv2.imwrite(str(root / "rgb" / f"f{i:02d}.png"), rgb[..., ::-1])
    return root


def _copy_paired(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_quantized_model_runs_and_stays_close_to_fp32(tmp_path):
    net = tiny_chain()
    calib, test = nir_frames(8, 32, 32, seed=1), nir_frames(3, 32, 32, seed=2)
    cache = ArtefactCache(tmp_path)
    path = quantize_int8(net, calib, cache)
    assert path.is_file() and path.parent.name == "onnx-int8"
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(test)
    int8 = create_backend("onnxruntime", net, "cpu", "int8", cache_dir=tmp_path)
    out = np.concatenate([int8.infer_uint8(test[i : i + 1]) for i in range(len(test))])
    assert out.shape == ref.shape
    assert INT8_MIN_PSNR <= mean_psnr(out, ref) < 100.0  # close, and really quantized


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_runs_a_batch_frame_by_frame(tmp_path, backend):
    # calibrate writes one-frame models (1, 1, H, W); a batch of N (Colorizer.colorize_batch,
    # `nirvision export --batch N`) runs that model on each frame
    if backend == "openvino" and not _openvino_installed():
        pytest.skip("openvino is not installed")
    net = tiny_chain()
    quantize_int8(net, nir_frames(6, 32, 32, seed=1), ArtefactCache(tmp_path))
    test = nir_frames(3, 32, 32, seed=2)
    b = create_backend(backend, net, "cpu", "int8", cache_dir=tmp_path)
    b.prepare((3, 1, 32, 32))
    one_by_one = np.concatenate([b.infer_uint8(test[i : i + 1]) for i in range(len(test))])
    assert np.array_equal(b.infer_uint8(test), one_by_one)
    x = torch.from_numpy(test[:, None].astype(np.float32)) / 127.5 - 1
    assert b.infer(x).shape == (3, 3, 32, 32)
    # no model at another size: the advice names that size, which calibrate takes
    with pytest.raises(BackendUnavailable, match=r"at 40x24 in .*--sizes 40x24") as exc:
        b.infer_uint8(nir_frames(2, 24, 40))
    assert "2x1" not in str(exc.value)


def test_report_rows(tmp_path, paired):
    net = tiny_chain()
    nir, rgb, names = load_paired(paired, (32, 32))
    quantize_int8(net, load_nir_frames(paired / "nir", (32, 32), exclude=set(names[:2])), ArtefactCache(tmp_path))
    rows = precision_report(net, ["bf16", "fp16", "int8"], nir[:2], rgb[:2], "cpu", tmp_path)
    # one row per precision and backend that runs it
    assert [(r.precision, r.backend) for r in rows] == [("fp32", "eager"), ("bf16", "eager"), ("bf16", "openvino"), ("fp16", "eager"),
                                                       ("int8", "onnxruntime"), ("int8", "openvino")]
    by = {(r.precision, r.backend): r for r in rows}
    assert by["fp32", "eager"].dpsnr_gt == 0.0 and by["fp32", "eager"].psnr_gt is not None
    assert by["fp16", "eager"].skipped and "CUDA" in by["fp16", "eager"].skipped
    ran = [("bf16", "eager"), ("int8", "onnxruntime")]
    if _openvino_installed():
        ran.append(("int8", "openvino"))
        bf16 = by["bf16", "openvino"]  # run natively, or refused with the reason
        assert bf16.skipped is None or "no native bf16" in bf16.skipped
        if bf16.skipped is None:
            ran.append(("bf16", "openvino"))
    else:
        assert "nirvision[openvino]" in by["int8", "openvino"].skipped
    for key in ran:
        assert by[key].skipped is None
        assert by[key].psnr_vs_fp32 > 20 and by[key].ae_vs_fp32 >= 0
        assert by[key].dpsnr_gt == pytest.approx(by[key].psnr_gt - by["fp32", "eager"].psnr_gt)
    # asked to, the CPU estimates fp16 with a half copy of the chain: close to fp32, not equal
    est = precision_report(net, ["fp16"], nir[:2], rgb[:2], "cpu", tmp_path, cpu_fp16=True)[1]
    assert est.skipped is None and est.backend == "eager-cpu-fp16"
    assert 35 < est.psnr_vs_fp32 < 100 and est.dpsnr_gt == pytest.approx(est.psnr_gt - by["fp32", "eager"].psnr_gt)
    assert next(net.parameters()).dtype == torch.float32  # the caller's chain stays fp32


def _openvino_installed() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def test_frames_sources(tmp_path, paired):
    assert load_nir_frames(paired / "nir", limit=3).shape == (3, 40, 48)
    assert load_nir_frames(paired / "nir", (24, 16)).shape == (6, 16, 24)
    assert len(load_nir_frames(paired / "nir", exclude={"f00", "f01"})) == 4
    nir, rgb, names = load_paired(paired)
    assert nir.shape == (6, 40, 48) and rgb.shape == (6, 40, 48, 3) and names == [f"f{i:02d}" for i in range(6)]
    assert load_paired(paired, (24, 16), 3)[2] == ["f00", "f02", "f04"]  # spread over the folder
    assert rgb[0, 0, 0, 0] == nir[0, 0, 0]  # RGB order, not OpenCV's BGR
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 40))
    for img in nir_frames(4, 40, 48):
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()
    assert load_nir_frames(video, limit=3).shape == (3, 40, 48)
    with pytest.raises(FramesError, match="found no images"):
        load_nir_frames(tmp_path / "empty*.png")
    with pytest.raises(InputError, match=r"folder not found \(expected DIR/nir/NAME.png and DIR/rgb/NAME.png\)"):
        load_paired(tmp_path)
    with pytest.raises(FramesError, match="WIDTHxHEIGHT"):
        parse_size("640by480")
    assert parse_size("640x480") == (640, 480)


def test_cli_calibrates_and_reports(tmp_path, paired, capsys):
    out = tmp_path / "report.json"
    code = main(["--paired", str(paired), "--model", "lite", "--sizes", "48x40", "--num", "3", "--eval", "2",
                 "--precisions", "int8", "--cache", str(tmp_path / "cache"), "--json", str(out), "--threads", "1"])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["backend"]) for r in rows] == [("fp32", "eager"), ("int8", "onnxruntime"), ("int8", "openvino")]
    assert rows[1]["psnr_vs_fp32"] > 15 and rows[1]["psnr_gt"] is not None
    assert list((tmp_path / "cache" / "onnx-int8").glob("*.onnx"))
    printed = capsys.readouterr().out
    assert "int8 model calibrated on" in printed and "PSNR vs fp32" in printed


def test_cli_without_ground_truth_reports_against_fp32(tmp_path, paired, capsys):
    # only --frames: report frames are held out of them and the ground-truth columns print "-"
    out = tmp_path / "report.json"
    code = main(["--frames", str(paired / "nir"), "--model", "lite", "--sizes", "48x40", "--num", "3", "--eval", "2",
                 "--precisions", "int8", "--cache", str(tmp_path / "cache"), "--json", str(out), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["backend"]) for r in rows][:2] == [("fp32", "eager"), ("int8", "onnxruntime")]
    assert rows[1]["psnr_vs_fp32"] > 15 and rows[1]["psnr_gt"] is None and rows[1]["dpsnr_gt"] is None
    header = next(line for line in captured.out.splitlines() if "PSNR vs fp32" in line)
    int8 = next(line for line in captured.out.splitlines() if line.split()[:2] == ["int8", "onnxruntime"])
    assert int8.split()[-3:] == ["-", "-", "-"] and len(int8) == len(header)  # "-" right-aligned to each column


def test_table_cell_without_a_value_is_a_dash_of_the_column_width():
    from calibrate.__main__ import cell

    assert cell(None, "+9.3f") == "        -" and cell(None, "12.2f") == " " * 11 + "-"
    assert cell(-0.25, "+9.3f") == "   -0.250" and cell(1.0, "6.2f") == "  1.00"


def test_cli_precisions_default_and_fp16_on_cpu(tmp_path, paired, capsys):
    common = ["--paired", str(paired), "--model", "lite", "--sizes", "48x40", "--num", "3", "--eval", "2", "--skip-quantize",
              "--cache", str(tmp_path / "cache"), "--threads", "1"]
    out = tmp_path / "default.json"
    assert main([*common, "--json", str(out)]) == 0
    assert "fp16: not reported on the CPU unless asked" in capsys.readouterr().out
    assert [r["precision"] for r in json.loads(out.read_text())["rows"]] == ["fp32", "bf16", "bf16", "int8", "int8"]
    out = tmp_path / "fp16.json"
    assert main([*common, "--precisions", "fp16", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["backend"]) for r in rows] == [("fp32", "eager"), ("fp16", "eager-cpu-fp16")]
    assert rows[1]["psnr_vs_fp32"] > 35 and rows[1]["psnr_gt"] is not None
    assert main([*common, "--precisions", "fp8"]) == 2
    assert "--precisions: fp8: expected some of bf16, fp16, int8" in capsys.readouterr().err


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["--frames", str(tmp_path / "nothing"), "--sizes", "32x32"]) == 2
    assert "found no images" in capsys.readouterr().err
    assert main(["--sizes", "32x32"]) == 2
    assert "give --frames (calibration NIR frames) or --paired" in capsys.readouterr().err


def test_paired_folder_pairs_as_evaluate_does(tmp_path, paired, capsys):
    # an image without its partner, or a pair of two sizes, is an error naming it, not dropped or resized
    unpaired = _copy_paired(paired, tmp_path / "unpaired")
    cv2.imwrite(str(unpaired / "nir" / "extra.png"), nir_frames(1, 40, 48)[0])
    with pytest.raises(InputError, match=r"unpaired images: NIR without RGB: \['extra'\]"):
        load_paired(unpaired, (32, 32), 2)
    sizes = _copy_paired(paired, tmp_path / "sizes")
    cv2.imwrite(str(sizes / "rgb" / "f02.png"), np.zeros((20, 24, 3), np.uint8))
    with pytest.raises(InputError, match=r"pair 'f02' differs in size: NIR 48x40, RGB 24x20"):
        load_paired(sizes, (32, 32))
    assert main(["--paired", str(unpaired), "--sizes", "48x40", "--num", "2", "--eval", "2", "--precisions", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "unpaired images: NIR without RGB: ['extra']" in err and len(err.strip().splitlines()) == 1


def test_video_frames_are_spread_over_the_whole_video(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(40):  # frame i is grey level 6 * i
        writer.write(np.full((24, 32, 3), 6 * i, np.uint8))
    writer.release()
    frames = load_nir_frames(video, (16, 12), 6)
    index = [int(round(f.mean() / 6)) for f in frames]
    assert index == [0, 6, 12, 20, 26, 32]
    assert [int(round(f.mean() / 6)) for f in load_nir_frames(video, None, 50)] == list(range(40))  # fewer than asked: all


def _no_work(monkeypatch):
    """Building the model is the start of the work: bad options must be refused before it."""
    import nirvision.api

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(nirvision.api, "load_chain", refuse)


@pytest.mark.parametrize("extra, message", [
    (["--json", "{tmp}/afile/report.json"], "--json {tmp}/afile/report.json: {tmp}/afile is a file, not a folder"),
    (["--json", "{tmp}"], "--json {tmp}: is a folder; expected a file name"),
    (["--sizes", "48x40,"], "--sizes '48x40,': entry 2 is empty; expected comma-separated WIDTHxHEIGHT"),
    (["--sizes", "48x40,32"], "size '32': expected WIDTHxHEIGHT"),
    (["--precisions", ","], "--precisions ',': no reduced precision to report; expected some of bf16, fp16, int8"),
    (["--threads", "-2"], "--threads -2: expected 1 to 1024 CPU threads"),
    (["--threads", "0"], "--threads 0: expected 1 to 1024 CPU threads"),
    (["--device", "banana"], "device 'banana': expected auto, cpu, cuda or cuda:N"),
    (["--eval", "0", "--skip-quantize"], "--eval 0 (no report) leaves nothing to do without int8 calibration"),
    (["--model", "paper"], "--model paper: the bundled weights are lite; expected --weights FILE for trained paper weights, or --random-init"),
    (["--random-init", "--weights", "{tmp}/w.pt"], "give --weights or --random-init, not both"),
])
def test_cli_bad_options_exit_2_before_any_work(tmp_path, paired, capsys, monkeypatch, extra, message):
    (tmp_path / "afile").write_text("x")
    _no_work(monkeypatch)
    args = ["--paired", str(paired), "--sizes", "48x40", "--num", "2", "--eval", "2", "--cache", str(tmp_path / "cache")]
    assert main(args + [e.format(tmp=tmp_path) for e in extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calibrate: error: " + message.format(tmp=tmp_path)) and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value", [("--num", "0"), ("--num", "-3"), ("--eval", "-1"), ("--num", "x")])
def test_cli_counts_are_checked(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--frames", "x", flag, value])
    assert exc.value.code == 2
    assert f"argument {flag}: expected a" in capsys.readouterr().err


def test_cli_all_images_are_report_frames(tmp_path, paired, capsys, monkeypatch):
    # 6 pairs and --eval 16: every pair is a report frame, none is left to calibrate int8 on
    _no_work(monkeypatch)
    assert main(["--paired", str(paired), "--sizes", "48x40", "--precisions", "int8", "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "all 6 images are report frames (held out of calibration); lower --eval below 6" in err
    assert "found no images" not in err


def test_cli_eval_0_calibrates_without_a_report(tmp_path, paired, capsys):
    out = tmp_path / "sub" / "report.json"
    code = main(["--frames", str(paired / "nir"), "--sizes", "48x40", "--num", "3", "--eval", "0", "--precisions", "int8",
                 "--cache", str(tmp_path / "cache"), "--json", str(out), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "int8 model calibrated on 3 frames" in captured.out and "48x40: no report (--eval 0)" in captured.out
    assert len(list((tmp_path / "cache" / "onnx-int8").glob("*.onnx"))) == 1
    assert json.loads(out.read_text())["rows"] == []


def test_parse_sizes():
    assert parse_sizes("48x40, 32x32") == [("48x40", (48, 40)), ("32x32", (32, 32))]
    with pytest.raises(FramesError, match="48X40 is given twice"):
        parse_sizes("48x40,48X40")


def test_calibrate_defaults_to_the_bundled_weights_colorize_uses(tmp_path, paired, capsys):
    # without --weights the int8 model is made for the weights colorize runs, and found by it
    from nirvision.api import load_chain
    from nirvision.resources import default_weights_path

    cache, out = tmp_path / "cache", tmp_path / "r.json"
    code = main(["--frames", str(paired / "nir"), "--sizes", "48x40", "--num", "3", "--eval", "0", "--precisions", "int8",
                 "--cache", str(cache), "--json", str(out), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"weights: {default_weights_path()} (model lite)" in captured.out and "random init" not in captured.out
    meta = json.loads(out.read_text())["meta"]
    assert meta["weights"] == str(default_weights_path()) and meta["random_init"] is False and meta["model"] == "lite"
    bundled = create_backend("onnxruntime", load_chain()[0].eval(), "cpu", "int8", cache_dir=cache)
    assert bundled.infer_uint8(nir_frames(1, 40, 48)).shape == (1, 40, 48, 3)  # the calibrated model is there for them


def test_random_init_only_when_asked_and_said(tmp_path, paired, capsys):
    from nirvision.api import load_chain

    cache, out = tmp_path / "cache", tmp_path / "r.json"
    code = main(["--frames", str(paired / "nir"), "--sizes", "48x40", "--num", "3", "--eval", "0", "--precisions", "int8",
                 "--random-init", "--seed", "5", "--cache", str(cache), "--json", str(out), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "weights: random init of lite (seed 5), for speed measurements only" in captured.out
    meta = json.loads(out.read_text())["meta"]
    assert meta["weights"] is None and meta["random_init"] is True and meta["seed"] == 5
    with pytest.raises(BackendUnavailable, match="no calibrated int8 model for these weights"):  # not for the bundled weights
        create_backend("onnxruntime", load_chain()[0].eval(), "cpu", "int8", cache_dir=cache).infer_uint8(nir_frames(1, 40, 48))


@pytest.mark.parametrize("random_init", [False, True])
def test_bench_times_the_int8_model_calibrate_made_with_the_same_flags(tmp_path, paired, capsys, monkeypatch, random_init):
    # calibrate and bench agree on the model without being told: the bundled weights by default,
    # the seeded random init of lite with --random-init on both; the other's int8 model is not taken
    from nirvision.cli import main as cli_main

    monkeypatch.setattr("nirvision.runtime.backends.timing.load_average", lambda: 0.25)  # no busy-machine warning
    cache, out = tmp_path / "cache", tmp_path / "bench.json"
    flag = ["--random-init"] if random_init else []
    assert main(["--frames", str(paired / "nir"), "--sizes", "48x40", "--num", "3", "--eval", "0", "--precisions", "int8",
                 "--cache", str(cache), "--threads", "1", *flag]) == 0
    bench = ["bench", "--backends", "onnxruntime", "--precisions", "int8", "--sizes", "48x40", "--count", "1", "--warmup", "0",
             "--no-engine", "--threads", "1", "--frames", str(paired / "nir"), "--cache", str(cache), "--quiet"]
    capsys.readouterr()
    assert cli_main([*bench, *flag, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("random init" in printed) == random_init and ("mpfnet-lite.pt" in printed) != random_init
    [row] = [r for r in json.loads(out.read_text()) if (r["backend"], r["precision"]) == ("onnxruntime", "int8")]
    assert not row["skipped"] and row["fps"] > 0
    other = [] if random_init else ["--random-init"]
    assert cli_main([*bench, *other, "--json", str(out)]) == 0
    [row] = [r for r in json.loads(out.read_text()) if (r["backend"], r["precision"]) == ("onnxruntime", "int8")]
    assert "python -m calibrate" in row["skipped"]


def test_bench_refuses_weights_with_random_init(tmp_path, capsys):
    from nirvision.cli import main as cli_main
    from nirvision.resources import default_weights_path

    assert cli_main(["bench", "--weights", str(default_weights_path()), "--random-init", "--no-engine"]) == 2
    assert "give --weights or --random-init, not both" in capsys.readouterr().err
