"""`nirvision evaluate` on a paired folder made at test time, and LPIPS from user-given weights."""
import json

import cv2
import numpy as np
import pytest
import torch

from nirvision.api import build_chain
from nirvision.cli import main
from nirvision.lpips import LPIPS
from nirvision.metrics import evaluate_pairs, mean_metrics
from nirvision.models import load_model_config, save_checkpoint
from tests.train.conftest import make_paired_folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = load_model_config("lite")
    torch.manual_seed(0)
    chain = build_chain(cfg)
    path = tmp_path_factory.mktemp("w") / "w.pt"
    save_checkpoint(path, cfg, {"nir_to_gray": chain.nir_to_gray, "colorizer": chain.colorizer})
    return path


def _lpips_files(tmp_path):
    m = LPIPS()
    torch.manual_seed(0)
    sa = {f"features.{i}.{p}": torch.randn_like(getattr(c, p)) * 0.05 for c, i in zip(m.convs, [0, 3, 6, 8, 10]) for p in ("weight", "bias")}
    sl = {f"lin{k}.model.1.weight": torch.rand_like(l.weight) for k, l in enumerate(m.lins)}
    torch.save(sa, tmp_path / "alex.pth")
    torch.save(sl, tmp_path / "lin.pth")
    return tmp_path / "alex.pth", tmp_path / "lin.pth"


def test_evaluate_writes_table_json_and_grid(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=5, size=64)
    out, grid = tmp_path / "m.json", tmp_path / "g.png"
    rc = main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--json", str(out), "--grid", str(grid), "--device", "cpu"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["count"] == 5 and len(report["per_image"]) == 5
    for k in ("psnr", "ssim", "ae"):
        assert report["mean"][k] == pytest.approx(np.mean([r[k] for r in report["per_image"]]))
    assert report["lpips"] is None
    assert "LPIPS skipped" in capsys.readouterr().out
    img = cv2.imread(str(grid))
    assert img is not None and img.shape[0] > 5 * 64 and img.shape[1] > 3 * 64
    # the floor is computed from the images themselves: NIR copied to three channels
    names = sorted(p.stem for p in (data / "nir").glob("*.png"))
    nirs = [cv2.imread(str(data / "nir" / f"{n}.png"), cv2.IMREAD_GRAYSCALE) for n in names]
    rgbs = [cv2.cvtColor(cv2.imread(str(data / "rgb" / f"{n}.png")), cv2.COLOR_BGR2RGB) for n in names]
    floor = mean_metrics(evaluate_pairs([np.repeat(n[..., None], 3, 2) for n in nirs], rgbs))
    assert len(names) == 5 and np.isfinite(floor["psnr"])
    assert report["floor_nir_as_gray"] == pytest.approx(floor)
    assert report["infer_scale"] == 1.0 and report["levels"] == "auto"
    # the same at half scale: scored, and not the same predictions
    rc = main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--json", str(out), "--grid", str(grid), "--device", "cpu",
               "--infer-scale", "0.5"])
    half = json.loads(out.read_text())
    assert rc == 0 and half["infer_scale"] == 0.5 and half["count"] == 5
    assert half["mean"]["psnr"] != report["mean"]["psnr"] and np.isfinite(half["mean"]["psnr"])


def test_evaluate_with_lpips_weights(tmp_path, checkpoint):
    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    alex, lin = _lpips_files(tmp_path)
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--json", str(out), "--grid", str(tmp_path / "g.png"),
               "--lpips-alexnet", str(alex), "--lpips-lin", str(lin), "--device", "cpu"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["lpips"] == "AlexNet" and all(r["lpips"] > 0 for r in report["per_image"])


def test_lpips_is_zero_for_identical_images_and_grows_with_difference(tmp_path):
    scorer = LPIPS.load(*_lpips_files(tmp_path))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 20, 0, 255).astype(np.uint8)
    c = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert scorer.distance(a, a) == pytest.approx(0.0, abs=1e-7)
    assert 0 < scorer.distance(a, b) < scorer.distance(a, c)


def test_evaluate_bad_inputs_exit_2(tmp_path, checkpoint, capsys):
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(tmp_path / "none")]) == 2
    assert "folder not found" in capsys.readouterr().err
    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--lpips-alexnet", str(tmp_path / "x.pth"), "--lpips-lin", str(tmp_path / "y.pth")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["evaluate", "--weights", str(tmp_path / "missing.pt"), "--data", str(data)]) == 2
    assert f"checkpoint {tmp_path / 'missing.pt'}: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("extra,says", [
    (["--json", "{tmp}/afile/m.json"], "--json {tmp}/afile/m.json: {tmp}/afile is a file, not a folder"),
    (["--json", "{tmp}"], "is a folder"),
    (["--json", "{tmp}/m.png"], "--json {tmp}/m.png: expected a file name ending in .json"),
    (["--grid", "{tmp}/g.txt"], "--grid {tmp}/g.txt: expected a file name ending in .png or .jpg or .jpeg"),
    (["--grid", "{tmp}/afile/g.png"], "--grid {tmp}/afile/g.png: {tmp}/afile is a file, not a folder"),
    (["--grid-count", "-2"], "--grid-count -2: expected 0 (no grid) or more rows"),
    # reports over the images read: one of them replaced, or a new one read by the next run (through a link too)
    (["--grid", "{tmp}/d/nir/field_0000.png"], "--grid {tmp}/d/nir/field_0000.png: lies in the input {tmp}/d/nir, where it would replace an input image"),
    (["--grid", "{tmp}/link/rgb/new.jpg"], "lies in the input {tmp}/d/rgb, where it would be read as an input by the next run"),
])
def test_evaluate_refuses_unwritable_outputs_before_colorizing(tmp_path, checkpoint, capsys, monkeypatch, extra, says):
    import nirvision.api

    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    (tmp_path / "link").symlink_to(data)
    before = {p: p.read_bytes() for p in data.rglob("*.png")}
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(nirvision.api.Colorizer, "load", lambda *a, **k: pytest.fail("colorizing started before the outputs were checked"))
    args = [a.format(tmp=tmp_path) for a in extra]
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--device", "cpu", *args]) == 2
    assert says.format(tmp=tmp_path) in capsys.readouterr().err
    assert {p: p.read_bytes() for p in data.rglob("*.png")} == before


def test_reports_beside_the_inputs_are_taken_where_nothing_reads_them(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--device", "cpu",
                 "--json", str(data / "nir" / "m.json"), "--grid", str(data / "grid.png"), "--grid-count", "2"]) == 0
    assert json.loads((data / "nir" / "m.json").read_text())["count"] == 2
    assert cv2.imread(str(data / "grid.png")).shape[0] > 2 * 64


def test_bench_and_calibrate_refuse_reports_over_their_frames(tmp_path, capsys):
    from calibrate.__main__ import main as calibrate_main

    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    before = {p: p.read_bytes() for p in data.rglob("*.png")}
    frame = data / "nir" / "field_0000.png"
    assert main(["bench", "--backends", "eager", "--sizes", "64x64", "--count", "1", "--no-engine", "--frames", str(data / "nir"),
                 "--plot", str(frame)]) == 2
    assert f"--plot {frame}: lies in the input {data / 'nir'}" in capsys.readouterr().err
    assert main(["bench", "--backends", "eager", "--sizes", "64x64", "--count", "1", "--no-engine", "--frames", str(data / "nir"),
                 "--json", str(frame)]) == 2
    assert "expected a file name ending in .json" in capsys.readouterr().err
    assert calibrate_main(["--paired", str(data), "--sizes", "64x64", "--num", "1", "--eval", "1", "--precisions", "bf16",
                           "--json", str(data / "rgb" / "field_0000.png")]) == 2
    assert "expected a file name ending in .json" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in data.rglob("*.png")} == before


def test_evaluate_pairs_of_other_sizes_and_no_grid(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=3, size=64)
    other = make_paired_folder(tmp_path / "o", count=1, size=128, seed=5)
    for kind in ("nir", "rgb"):
        (other / kind / "field_0000.png").rename(data / kind / "zoo_0009.png")
    out, grid = tmp_path / "m.json", tmp_path / "g.png"
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--json", str(out), "--grid", str(grid), "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["count"] == 4
    img = cv2.imread(str(grid))
    assert img.shape[0] > 4 * 64 and img.shape[1] < 4 * 128  # four rows of 64 px tiles: the 128 px pair fitted to them
    grid.unlink()
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--grid", str(grid), "--grid-count", "0", "--device", "cpu"]) == 0
    assert not grid.exists()


def test_evaluate_names_what_cannot_be_scored(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    cv2.imwrite(str(data / "nir" / "tiny_0000.png"), np.zeros((5, 6), np.uint8))
    cv2.imwrite(str(data / "rgb" / "tiny_0000.png"), np.zeros((5, 6, 3), np.uint8))
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--device", "cpu"]) == 2
    assert "pair 'tiny_0000' is 6x5; expected at least 7x7 pixels" in capsys.readouterr().err
    (data / "nir" / "tiny_0000.png").unlink()
    (data / "rgb" / "tiny_0000.png").unlink()
    cv2.imwrite(str(data / "nir" / "field_0000.jpg"), np.zeros((64, 64), np.uint8))
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--device", "cpu"]) == 2
    assert "two images named 'field_0000'" in capsys.readouterr().err


def test_lpips_weights_of_the_wrong_shape_are_refused(tmp_path):
    alex, lin = _lpips_files(tmp_path)
    sl = torch.load(lin, weights_only=True)
    sl["lin2.model.1.weight"] = torch.tensor(0.5)  # a scalar: copy_ would have spread it over the layer
    torch.save(sl, tmp_path / "scalar.pth")
    with pytest.raises(ValueError, match=r"--lpips-lin .*scalar.pth: lin2.model.1.weight is shape \(\), expected a float tensor of shape \(1, 384, 1, 1\)"):
        LPIPS.load(alex, tmp_path / "scalar.pth")
    sa = torch.load(alex, weights_only=True)
    sa["features.0.bias"] = "x"
    torch.save(sa, tmp_path / "str.pth")
    with pytest.raises(ValueError, match=r"features.0.bias is str"):
        LPIPS.load(tmp_path / "str.pth", lin)


def test_spread_over_categories_takes_each_category_in_proportion_and_always_the_same():
    from nirvision.cli.evaluate import spread_over_categories

    names = [f"field_{i:04d}" for i in range(10)] + [f"forest_{i:04d}" for i in range(20)] + ["water_0000", "water_0001"]
    four = spread_over_categories(names, 4)
    assert four == spread_over_categories(list(names), 4)  # deterministic
    assert [n.split("_")[0] for n in four] == ["field", "forest", "forest", "water"]  # each category, forest the largest
    assert four == ["field_0000", "forest_0000", "forest_0010", "water_0000"]  # spread over each category's names
    ten = spread_over_categories(names, 10)
    assert len(ten) == 10 and sum(n.startswith("forest") for n in ten) == 6 and sum(n.startswith("field") for n in ten) == 3
    two = spread_over_categories(names, 2)
    assert len(two) == 2 and len({n.split("_")[0] for n in two}) == 2  # fewer than categories: two categories, one each
    assert spread_over_categories(names, 40) == names


def test_evaluate_limit_scores_a_spread_subset_reading_only_it(tmp_path, checkpoint, capsys, monkeypatch):
    import nirvision.datasets

    data = make_paired_folder(tmp_path / "d", count=12, size=64)  # field_0000, forest_0001, field_0002, ...
    read = []
    original = nirvision.datasets.read_nir_raw
    monkeypatch.setattr(nirvision.datasets, "read_nir_raw", lambda path: read.append(path.stem) or original(path))
    out = tmp_path / "m.json"
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--limit", "4", "--json", str(out),
                 "--grid-count", "0", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    taken = ["field_0000", "field_0006", "forest_0001", "forest_0007"]  # 6 of each category: its 1st and 4th
    assert [r["name"] for r in report["per_image"]] == taken and report["count"] == 4
    assert report["subset"] == {"names": None, "limit": 4, "of": 12, "taken": taken}
    assert sorted(read) == sorted(taken)  # the other 8 pairs were never read
    assert "scoring 4 of 12 pairs (--limit 4, spread over the categories)" in capsys.readouterr().err
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--limit", "0", "--device", "cpu"]) == 2
    assert "--limit 0: expected 1 or more pairs to score" in capsys.readouterr().err


def test_evaluate_names_scores_those_pairs_and_suggests_close_names(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=6, size=64)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--names", "forest_0003, field_0000.png",
                 "--json", str(out), "--grid-count", "0", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["per_image"]] == ["forest_0003", "field_0000"]
    assert report["subset"]["names"] == ["forest_0003", "field_0000"] and report["subset"]["of"] == 6
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--names", "forest_003,field_0000", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"--names: no pair named 'forest_003' in {data}; close matches: forest_0003" in err
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--names", " , ", "--device", "cpu"]) == 2
    assert "--names ' , ': expected comma-separated pair names without suffix" in capsys.readouterr().err


def test_evaluate_records_what_scored_and_logs_progress_as_lines(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=12, size=64)
    out, grid = tmp_path / "m.json", tmp_path / "g.png"
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--json", str(out), "--grid", str(grid),
                 "--grid-count", "3", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert {k: report[k] for k in ("backend", "precision", "device", "workers")} == {"backend": "eager", "precision": "fp32", "device": "cpu", "workers": 1}
    assert report["subset"] is None and report["count"] == 12
    err = capsys.readouterr().err  # not a terminal: whole lines, no carriage returns run together
    assert "nirvision evaluate: backend eager (fp32 on cpu)" in err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if line.startswith("colorizing")]
    assert progress[-1] == "colorizing 12/12" and 2 <= len(progress) <= 11
    # the grid: a label column (name, PSNR) before NIR | prediction | truth
    img = cv2.imread(str(grid))
    assert img.shape[1] >= 4 * 64 + 5 * 4 and img.shape[0] > 3 * 64
    labels = [img[22 + 4 + r * 68: 22 + 4 + r * 68 + 64, 4:68] for r in range(3)]
    assert all((tile < 128).any() for tile in labels)  # text on each
    assert not np.array_equal(labels[0], labels[1])  # one per image


def test_evaluate_auto_says_which_backend_it_chose_and_records_it(tmp_path, checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--backend", "auto", "--limit", "1",
                 "--json", str(out), "--grid-count", "0", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    err = capsys.readouterr().err
    assert f"nirvision evaluate: backend auto chose {report['backend']} ({report['precision']} on cpu)" in err
    assert report["backend"] != "auto"


def test_evaluate_warns_that_a_translate_output_is_no_trained_chain(tmp_path, capsys, caplog):
    cfg = load_model_config("lite")
    torch.manual_seed(0)
    chain = build_chain(cfg)
    path = tmp_path / "runs" / "t" / "translate" / "output.pt"
    save_checkpoint(path, cfg, {"nir_to_gray": chain.nir_to_gray, "colorizer": chain.colorizer}, meta={"stage": "translate", "epoch": 1})
    data = make_paired_folder(tmp_path / "d", count=1, size=64)
    caplog.set_level("WARNING")
    assert main(["evaluate", "--weights", str(path), "--data", str(data), "--grid-count", "0", "--device", "cpu"]) == 0
    assert f"checkpoint {path} is the output of training stage translate, which does not train its colorizer" in caplog.text


def test_evaluate_subsets_of_the_validation_split(tmp_path, checkpoint, capsys):
    from nirvision.datasets import load_paired, validation_split

    data = make_paired_folder(tmp_path / "d", count=30, size=64)
    train, val = validation_split(load_paired(data))
    out = tmp_path / "m.json"
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--split", "val", "--limit", "2", "--json", str(out),
                 "--grid-count", "0", "--device", "cpu"]) == 0
    subset = json.loads(out.read_text())["subset"]
    assert subset["of"] == len(val) > 2 and len(subset["taken"]) == 2 and set(subset["taken"]) <= set(val)
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(checkpoint), "--data", str(data), "--split", "val", "--names", train[0], "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"--names: no pair named {train[0]!r} in the validation split of {data}; it is a training pair, outside the validation split" in err


def _weights_recording(tmp_path, split: dict | None):
    """Weights as training writes them, recording ``split`` (meta.split) where given."""
    cfg = load_model_config("lite")
    torch.manual_seed(0)
    chain = build_chain(cfg)
    path = tmp_path / "rec.pt"
    save_checkpoint(path, cfg, {"nir_to_gray": chain.nir_to_gray, "colorizer": chain.colorizer},
                    meta={"stage": "finetune", **({"split": split} if split is not None else {})})
    return path


def _scored(out):
    return [r["name"] for r in json.loads(out.read_text())["per_image"]]


def test_split_val_scores_the_split_the_weights_record(tmp_path, capsys):
    """--split val takes the validation names the weights' training held out (another seed gives
    other names: the default split would score pairs the model learnt from), says so, and where
    the weights record only the settings, splits by them."""
    from nirvision.datasets import load_paired, validation_split

    data = make_paired_folder(tmp_path / "d", count=30, size=64)
    pairs = load_paired(data)
    default = validation_split(pairs)[1]
    seed5 = next(v for s in range(5, 50) if (v := validation_split(pairs, seed=s)[1]) != default)
    out = tmp_path / "m.json"
    args = ["evaluate", "--data", str(data), "--split", "val", "--json", str(out), "--grid-count", "0", "--device", "cpu"]
    weights = _weights_recording(tmp_path, {"train": 30 - len(seed5), "val": len(seed5), "val_names": seed5 + ["gone_0001"], "seed": 99})
    assert main(["evaluate", "--weights", str(weights), *args[1:]]) == 0
    assert _scored(out) == seed5 and json.loads(out.read_text())["split_from"] == "weights"
    err = capsys.readouterr().err
    assert (f"nirvision evaluate: --split val: the {len(seed5)} validation pairs the weights record, which their training held out "
            f"(seed 99, 8%, crops of one photograph on one side); 1 of the {len(seed5) + 1} recorded are not in {data}") in err
    # only the settings recorded: the split by them
    weights = _weights_recording(tmp_path, {"seed": 7, "val_fraction": 0.2, "photo_group": 1, "split_by_content": False})
    assert main(["evaluate", "--weights", str(weights), *args[1:]]) == 0
    assert _scored(out) == validation_split(pairs, 0.2, 7, 1, False)[1]
    assert "--split val: the split by the settings the weights record (seed 7, 20%)" in capsys.readouterr().err
    # nothing recorded: the default split, said to be one
    weights = _weights_recording(tmp_path, None)
    assert main(["evaluate", "--weights", str(weights), *args[1:]]) == 0
    assert _scored(out) == default and json.loads(out.read_text())["split_from"] == "default"
    assert ("--split val: the weights record no validation split; the default split (seed 0, 8%, crops of one photograph on one side), "
            "which is the one their training held out only if it ran with those data settings") in capsys.readouterr().err


def test_16_bit_nir_pairs_are_read_at_one_depth_and_input_bits_sets_it(tmp_path, checkpoint, capsys):
    data = make_paired_folder(tmp_path / "d", count=2, size=64)
    bright, dark = sorted((data / "nir").iterdir())
    nir = cv2.imread(str(bright), cv2.IMREAD_UNCHANGED).astype(np.uint32) * 4095 // 255  # 12-bit values
    cv2.imwrite(str(bright), nir.astype(np.uint16))
    cv2.imwrite(str(dark), (nir // 5).astype(np.uint16))  # the same camera at 1/5 exposure: under 1024, but still 12-bit
    out = tmp_path / "m.json"
    args = ["evaluate", "--weights", str(checkpoint), "--data", str(data), "--json", str(out), "--grid-count", "0", "--device", "cpu",
            "--levels", "off"]
    assert main(args) == 0
    floor12 = json.loads(out.read_text())
    assert floor12["input_bits"] == "auto"
    assert main(args + ["--input-bits", "12"]) == 0
    fixed = json.loads(out.read_text())
    assert fixed["input_bits"] == 12 and fixed["floor_nir_as_gray"] == floor12["floor_nir_as_gray"]  # auto found the folder's 12 bits
    assert main(args + ["--input-bits", "11"]) == 2
    assert "--input-bits '11': expected auto or one of 10, 12, 14, 16" in capsys.readouterr().err
