"""`nirvision evaluate` on a paired folder made at test time, and LPIPS from user-given weights."""
import json

import cv2
import numpy as np
import pytest
import torch

from nirvision.api import build_chain
from nirvision.cli import main
from nirvision.lpips import LPIPS
from nirvision.metrics import psnr
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
    nir = cv2.imread(str(data / "nir" / "field_0000.png"), cv2.IMREAD_GRAYSCALE)
    rgb = cv2.cvtColor(cv2.imread(str(data / "rgb" / "field_0000.png")), cv2.COLOR_BGR2RGB)
    assert np.isfinite(report["floor_nir_as_gray"]["psnr"])
    assert psnr(np.repeat(nir[..., None], 3, 2), rgb) > 0
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
