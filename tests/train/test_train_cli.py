"""`python -m train` rejects bad configs with the file and key, and exits 2."""
import yaml

from nirvision.config import to_dict
from train.__main__ import main

from .conftest import tiny_config


def _write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_unknown_and_wrong_keys_name_file_and_key(paired_dir, tmp_path, capsys):
    good = to_dict(tiny_config(paired_dir, tmp_path))
    bad = {**good, "pretrain": {**good["pretrain"], "epochz": 3}}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml" in err and "pretrain.epochz" in err and "unknown key" in err
    bad = {**good, "data": {**good["data"], "crop": "big"}}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    assert "data.crop" in capsys.readouterr().err
    bad = {k: v for k, v in good.items() if k != "translate"}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    assert "translate" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    cfg = to_dict(tiny_config(tmp_path / "nowhere", tmp_path / "runs"))
    assert main(["--config", _write(tmp_path, cfg)]) == 2
    assert "folder not found" in capsys.readouterr().err


def test_bad_stage_augmentation_and_sizes_are_refused_before_training(paired_dir, tmp_path, capsys):
    good = to_dict(tiny_config(paired_dir, tmp_path / "runs"))
    bad = {**good, "finetune": {**good["finetune"], "crop_min": 0.9, "crop_max": 0.8}}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml" in err and "finetune" in err and "crop_min" in err
    bad = {**good, "data": {**good["data"], "image_size": 160}}  # lite needs multiples of 64
    assert main(["--config", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert "data.image_size" in err and "multiple of 64" in err
    bad = {**good, "translate": {**good["translate"], "crop": 80}}  # the translators need multiples of 32
    assert main(["--config", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert "translate.crop" in err and "multiple of 32" in err
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_a_previous_stage_output_that_does_not_fit_is_a_clear_error(paired_dir, tmp_path, caplog):
    from nirvision.models.checkpoint import save_checkpoint
    from nirvision.models.registry import load_model_config

    cfg = tiny_config(paired_dir, tmp_path / "runs")
    model = load_model_config("lite", require_training=True)
    for stage, roles in (("translate", ("nir_to_gray", "gray_to_nir", "disc_gray", "disc_nir")), ("pretrain", ("colorizer",))):
        save_checkpoint(tmp_path / "runs" / "t" / stage / "output.pt", model, {r: {} for r in roles})  # no tensors in them
    assert main(["--config", _write(tmp_path, to_dict(cfg)), "--stage", "finetune"]) == 2
    assert "translate/output.pt" in caplog.text and "does not fit the model" in caplog.text


def test_export_writes_weights_the_library_loads_and_a_model_card(paired_dir, tmp_path):
    import numpy as np

    from nirvision.api import Colorizer
    from nirvision.models.checkpoint import read_checkpoint

    cfg = to_dict(tiny_config(paired_dir, tmp_path / "runs"))
    cfg["finetune"] = {**cfg["finetune"], "epochs": 4, "ema": 0.5}
    out = tmp_path / "w.pt"
    assert main(["--config", _write(tmp_path, cfg), "--export", str(out)]) == 0
    meta = read_checkpoint(out)["meta"]
    assert set(read_checkpoint(out)["networks"]) == {"nir_to_gray", "colorizer"}
    assert meta["ema"] == {"decay": 0.5, "updates": 4} and meta["finetune_epoch"] == 4
    assert [(q["first"], q["last"]) for q in meta["finetune_quarters"]] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert all(set(q) == {"first", "last", "val", "val_live"} for q in meta["finetune_quarters"])
    card = out.with_suffix(".md").read_text()
    assert f"| this model | {meta['val']['psnr']:.2f} |" in card
    assert "moving average of the finetune's weights (decay 0.5 a step, 4 steps)" in card
    assert card.count("- epochs ") == 4 and "; live " in card
    # the split (which evaluate --split val takes) and each stage's wall time, validation and checkpoints included
    assert {k: meta["split"][k] for k in ("seed", "val_fraction", "photo_group", "split_by_content")} == {
        "seed": 0, "val_fraction": 0.2, "photo_group": 1, "split_by_content": True}
    assert all(meta["wall_seconds"][s] > meta["train_seconds"][s] for s in ("translate", "pretrain", "finetune"))
    assert "- Wall time: " in card and "of which the training steps" in card
    # the training images' NIR levels, for --levels: those of the pairs it trained on
    from nirvision.runtime.levels import LevelsBand, band_of
    from train.data import TrainData
    from train.config import load_train_config

    band = band_of(meta)
    data = TrainData(load_train_config(_write(tmp_path, cfg)).data, 0)
    assert band == LevelsBand.from_images(data.nir[:, 0].numpy()) and band.images == len(data.train_names)
    assert f"the middle half over {band.images} images" in card
    colorizer = Colorizer.load(out, backend="eager", precision="fp32")
    assert colorizer.backend.band == band  # what --levels auto brings frames to
    rgb = colorizer(np.full((128, 128), 90, np.uint8))
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8
