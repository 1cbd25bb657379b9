"""A run or stage output of another model size is named as such (not hundreds of tensors),
--export takes a .pt / .pth outside the data, and the pictures and card of short runs read well."""
import logging

import cv2
import numpy as np
import pytest
import torch
import yaml

from nirvision.config import to_dict
from nirvision.models.checkpoint import save_checkpoint
from train.__main__ import check_export, main
from train.data import TrainData

from .conftest import tiny_config
from .test_stages import MODEL, run_stage


def _config(tmp_path, paired_dir, model="lite", name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**to_dict(tiny_config(paired_dir, tmp_path / "runs")), "model": model}))
    return str(path)


def _wide_model(tmp_path):
    """lite with a colorizer 8 wide instead of 16: the same input sizes, other tensors."""
    data = yaml.safe_load(open("configs/models/lite.yaml"))
    data["name"], data["colorizer"]["width"] = "wide", 8
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines[-1].startswith("train: error: "), err
    return lines[-1]


def test_resume_with_another_model_size_names_both_and_suggests_fresh(paired_dir, tmp_path, capsys):
    assert main(["--config", _config(tmp_path, paired_dir), "--stage", "pretrain"]) == 0
    capsys.readouterr()
    last = tmp_path / "runs" / "t" / "pretrain" / "last.pt"
    assert main(["--config", _config(tmp_path, paired_dir, _wide_model(tmp_path)), "--stage", "pretrain"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{last} holds model 'lite' (colorizer: width 16), the config asks for 'wide' (colorizer: width 8)" in line
    assert "--stage pretrain --fresh" in line and "name:" in line
    assert "shape differs" not in line and "febs." not in line
    # a state written before states recorded their model: the tensor diff, and the same advice
    state = torch.load(last, weights_only=True)
    del state["model_config"]
    torch.save(state, last)
    assert main(["--config", _config(tmp_path, paired_dir, _wide_model(tmp_path)), "--stage", "pretrain"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "does not fit the model" in line and "if the config's model changed since" in line and "--stage pretrain --fresh" in line


def test_a_previous_stage_output_of_another_model_size_names_both(paired_dir, tmp_path, capsys):
    run = tmp_path / "runs" / "t"
    nets = {r: MODEL.build(r) for r in ("nir_to_gray", "gray_to_nir", "colorizer")}
    nets |= {"disc_gray": MODEL.build("image_discriminator"), "disc_nir": MODEL.build("image_discriminator")}
    save_checkpoint(run / "translate" / "output.pt", MODEL, nets)  # the wide model's translators are lite's: this one fits
    save_checkpoint(run / "pretrain" / "output.pt", MODEL, {"colorizer": nets["colorizer"]})
    assert main(["--config", _config(tmp_path, paired_dir, _wide_model(tmp_path)), "--stage", "finetune"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{run / 'pretrain' / 'output.pt'} holds model 'lite' (colorizer: width 16), the config asks for 'wide' (colorizer: width 8)" in line
    assert "--stage pretrain --fresh" in line


def test_translate_logs_no_colour_angle_and_one_epoch_curves_centre_the_point(paired_dir, tmp_path, caplog):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    caplog.set_level(logging.INFO, logger="train.loop")
    runner, _ = run_stage(cfg, "translate", data)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("translate epoch 1/1"))
    assert "SSIM" in line and "AE" not in line  # gray against gray: the angle is always 0, not a measure
    curves = cv2.imread(str(tmp_path / "t" / "translate" / "curves.png"))
    assert curves.shape == (600, 840, 3)
    # the SSIM panel (bottom left, 420 x 300): one epoch's value in the middle of a narrow band, not on the left edge of +-0.5
    ssim = curves[300:, :420]
    blue = np.all(np.abs(ssim.astype(int) - (180, 119, 31)) < 40, axis=2).astype(np.uint8)
    marker = cv2.erode(blue, np.ones((3, 3), np.uint8))  # the filled marker, not the strokes of its label and legend (OpenCV 5.1 draws them bluer)
    ys, xs = np.nonzero(marker)
    assert len(xs) and abs(np.median(xs) - 230) < 6 and abs(np.median(ys) - 148) < 6
    ae = curves[300:, 420:]  # the AE panel is empty, and says so
    assert not np.all(np.abs(ae.astype(int) - (180, 119, 31)) < 40, axis=2).any()


def test_value_range_of_one_epoch_is_a_narrow_band():
    from train.plots import value_range

    lo, hi = value_range([0.119])
    assert lo < 0.119 < hi and hi - lo < 0.02
    assert value_range([14.2, 15.0]) == (14.2, 15.0)
    lo, hi = value_range([0.0])
    assert lo < 0 < hi and hi - lo == pytest.approx(0.002)


def card_meta(wall: dict | None) -> dict:
    """An export's meta for model_card: stages of 4.2 s, 30 s and 95 s of training steps, ``wall`` in all."""
    return {"train_seconds": {"translate": 4.2, "pretrain": 30.0, "finetune": 95.0}, "val": {"psnr": 12.0, "ssim": 0.3, "ae": 5.0},
            "floor_nir_as_gray": {"psnr": 11.0, "ssim": 0.2, "ae": 6.0}, "split": {"train": 8, "val": 2, "val_names": ["a", "b"]},
            "epochs": {"translate": 1, "pretrain": 1, "finetune": 1}, "finetune_epoch": 1, "last_val": {}, "machine": "x86_64",
            "wall_seconds": wall}


def test_wall_times_of_short_stages_read_in_seconds():
    from train.export import duration, model_card

    assert [duration(s) for s in (3.04, 42.4, 59.9, 90, 3540, 4608)] == ["3.0 s", "42 s", "1.0 min", "1.5 min", "59.0 min", "1.28 h"]
    cfg = tiny_config("data", "runs")
    card = model_card(cfg, "c.yaml", card_meta({"translate": 4.2, "pretrain": 30.0, "finetune": 95.0}), "w.pt")
    assert "- Wall time: 2.2 min in all (translate 4.2 s, pretrain 30 s, finetune 1.6 min; " in card


@pytest.mark.parametrize("case", ["onnx", "png", "in_data", "through_link"])
def test_export_must_be_a_pt_outside_the_data(paired_dir, tmp_path, capsys, case):
    link = tmp_path / "link"
    link.symlink_to(paired_dir)
    export, expect = {
        "onnx": (str(tmp_path / "out.onnx"), "expected a file name ending in .pt or .pth (e.g. out.pt)"),
        "png": (str(paired_dir / "nir" / "field_0000.png"), "expected a file name ending in .pt or .pth"),
        "in_data": (str(paired_dir / "nir" / "w.pt"), f"lies in the training data {paired_dir}; expected a path outside it"),
        "through_link": (str(link / "w.pth"), f"lies in the training data {paired_dir}"),
    }[case]
    before = sorted(p.name for p in paired_dir.rglob("*"))
    assert main(["--config", _config(tmp_path, paired_dir), "--export", export]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"train: error: --export {export}: ") and expect in line
    assert not (tmp_path / "runs").exists() and sorted(p.name for p in paired_dir.rglob("*")) == before


def test_export_takes_pt_and_pth_outside_the_data(paired_dir, tmp_path):
    assert check_export(str(tmp_path / "w.pth"), ("finetune",), str(paired_dir)) == tmp_path / "w.pth"
    assert check_export(str(tmp_path / "W.PT"), ("finetune",), str(paired_dir)) == tmp_path / "W.PT"


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('executed')",))


def test_a_last_pt_that_asks_to_run_code_is_refused_naming_it(paired_dir, tmp_path, capsys, recwarn):
    last = tmp_path / "runs" / "t" / "pretrain" / "last.pt"
    last.parent.mkdir(parents=True)
    marker = tmp_path / "executed"
    torch.save({"format": "nirvision-train-state", "stage": "pretrain", "note": _RunsCode(marker)}, last)
    assert main(["--config", _config(tmp_path, paired_dir), "--stage", "pretrain"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{last}: refused: the file asks to run code (builtins.exec); nirvision loads weights only" in line
    assert "--stage pretrain --fresh" in line and not marker.exists()
    assert not [w for w in recwarn.list if "pickle protocol" in str(w.message)]


def test_an_export_over_an_existing_file_or_the_bundled_weights_is_said(tmp_path, caplog, monkeypatch):
    import logging

    from train.__main__ import check_export

    existing = tmp_path / "w.pt"
    existing.write_bytes(b"old")
    with caplog.at_level(logging.WARNING, logger="train"):
        assert check_export(str(existing), ("finetune",)) == existing
        check_export(str(tmp_path / "new.pt"), ("finetune",))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"--export {existing} exists: it is replaced") and "bundled" not in said[0]
    import nirvision.resources as resources

    monkeypatch.setattr(resources, "default_weights_path", lambda: existing)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="train"):
        check_export(str(existing), ("finetune",))
    assert "the bundled weights that nirvision colorize and demo use" in caplog.records[0].getMessage()
