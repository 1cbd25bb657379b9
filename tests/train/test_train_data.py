"""Training data: unpaired images that are validation images, bad unpaired files, sizes training
cannot take, and 16-bit NIR read at one depth for the folder."""
import shutil

import cv2
import numpy as np
import pytest

from nirvision.config import ConfigError, load_dataclass, to_dict
from nirvision.errors import InputError
from train.config import TrainConfig
from train.data import TrainData

from .conftest import make_paired_folder, tiny_config


def _data_cfg(root, tmp_path, **data):
    cfg = to_dict(tiny_config(root, tmp_path / "runs"))
    cfg["data"].update(data)
    return load_dataclass(TrainConfig, cfg, source="test").data


# --- finding 3: unpaired images that are validation images are left out ---

def test_unpaired_validation_images_are_left_out_by_name_and_by_content(paired_dir, tmp_path, caplog):
    copies = tmp_path / "copies"
    copies.mkdir()
    base = TrainData(_data_cfg(paired_dir, tmp_path), 3)
    val = base.val_names
    # a renamed copy of a validation RGB image, and a renamed gray copy of a validation NIR image
    shutil.copy(paired_dir / "rgb" / f"{val[0]}.png", copies / "renamed_rgb.png")
    shutil.copy(paired_dir / "nir" / f"{val[-1]}.png", copies / "renamed_nir.png")
    shutil.copy(paired_dir / "rgb" / f"{base.train_names[0]}.png", copies / "a_training_image.png")  # not held out: kept
    caplog.set_level("WARNING")
    data = TrainData(_data_cfg(paired_dir, tmp_path, unpaired=[str(paired_dir / "rgb"), str(copies)]), 3)
    assert data.val_names == val
    # the training pairs' RGB, then the unpaired ones that are not validation images: the data's training RGB and one copy
    assert len(data.pretrain_rgb) == 2 * len(data.train_names) + 1
    assert len(data.gray_domain) == len(data.pretrain_rgb)
    held_out = {str(paired_dir / "rgb" / f"{n}.png") for n in val} | {str(copies / "renamed_rgb.png"), str(copies / "renamed_nir.png")}
    assert set(data.unpaired_left_out) == held_out
    assert f"data.unpaired: left out {len(held_out)} image(s) that are validation images" in caplog.text


# --- finding 10: bad unpaired files are named when skipped ---

def test_bad_unpaired_images_are_named_when_skipped(paired_dir, tmp_path, caplog):
    extra = tmp_path / "unp"
    extra.mkdir()
    good = cv2.imread(str(paired_dir / "rgb" / "field_0000.png"))
    cv2.imwrite(str(extra / "good.png"), np.ascontiguousarray(good[:, ::-1]))
    (extra / "bad.png").write_bytes((paired_dir / "rgb" / "field_0000.png").read_bytes()[:100])  # truncated
    cv2.imwrite(str(extra / "small.png"), good[:64, :64])
    caplog.set_level("WARNING")
    data = TrainData(_data_cfg(paired_dir, tmp_path, unpaired=[str(extra)], skip_bad=True), 3)
    assert set(data.skipped) == {str(extra / "bad.png"), str(extra / "small.png")}
    assert f"skipped {extra / 'bad.png'}: {extra / 'bad.png'}: not a readable image" in caplog.text
    assert f"skipped {extra / 'small.png'}: 64x64, expected 128x128" in caplog.text


# --- finding 8: training takes square images of data.image_size, and says so ---

def test_a_wrong_size_says_what_training_takes(tmp_path):
    rect = make_paired_folder(tmp_path / "rect", count=4, size=128)
    for p in rect.rglob("*.png"):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), img[:96])  # 128 wide, 96 high
    with pytest.raises(InputError) as err:
        TrainData(_data_cfg(rect, tmp_path), 3)
    text = str(err.value)
    assert "is 128x96, expected 128x128 (data.image_size); training takes square images of one size only" in text
    assert "crop or resize them to 128x128 first" in text and "set data.image_size" not in text  # no size that cannot be set
    square = make_paired_folder(tmp_path / "square", count=4, size=64)
    with pytest.raises(InputError, match=r"is 64x64, expected 128x128 \(data.image_size\); every image must be that size: "
                                         r"set data.image_size: 64 if all are 64x64"):
        TrainData(_data_cfg(square, tmp_path), 3)


# --- finding 4: 16-bit NIR at one depth for the folder ---

def _sixteen_bit_folder(root, scales):
    """Pairs whose NIR is 12-bit in 16-bit files, each exposure a fraction of the first's."""
    make_paired_folder(root, count=len(scales), size=128)
    for p, scale in zip(sorted((root / "nir").iterdir()), scales):
        nir = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.uint32)
        cv2.imwrite(str(p), (nir * 4095 // 255 * scale).astype(np.uint16))
    return root


def test_16_bit_training_nir_is_read_at_one_depth_and_data_input_bits_sets_it(tmp_path):
    root = _sixteen_bit_folder(tmp_path / "d", [1.0, 0.2, 1.0, 0.2, 1.0, 0.2, 1.0, 0.2, 1.0, 0.2])
    raw = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((root / "nir").iterdir())]
    data = TrainData(_data_cfg(root, tmp_path, val_fraction=0.2, split_by_content=False), 3)
    names = sorted(data.train_names + data.val_names)
    full = {n: im for n, im in zip(names, raw)}
    for n, nir in zip(data.train_names, data.nir[:, 0].numpy()):
        assert np.array_equal(nir, (full[n] >> 4).astype(np.uint8)), n  # every file at 12 bits, the dark ones too
    data16 = TrainData(_data_cfg(root, tmp_path, val_fraction=0.2, split_by_content=False, input_bits=16), 3)
    assert np.array_equal(data16.nir[0, 0].numpy(), (full[data16.train_names[0]] >> 8).astype(np.uint8))
    with pytest.raises(ConfigError, match=r"data.input_bits 11: expected auto or one of 10, 12, 14, 16"):
        _data_cfg(root, tmp_path, input_bits=11)


# --- finding 2: the stage outputs record the split, which nirvision evaluate --split val takes ---

def test_outputs_record_the_split_that_evaluate_split_val_scores(paired_dir, tmp_path, capsys):
    import json

    from nirvision.cli import main as nirvision_main
    from nirvision.datasets import load_paired, validation_split
    from nirvision.models.checkpoint import read_checkpoint

    from .test_stages import run_stage

    cfg = tiny_config(paired_dir, tmp_path)  # val_fraction 0.2: not the default split's 8%
    data = TrainData(cfg.data, cfg.seed)
    out = run_stage(cfg, "pretrain", data)[1]
    split = read_checkpoint(out)["meta"]["split"]
    assert split["val_names"] == data.val_names and split["val_fraction"] == 0.2 and split["seed"] == cfg.data.split_seed
    assert data.val_names != validation_split(load_paired(paired_dir))[1]
    report = tmp_path / "m.json"
    assert nirvision_main(["evaluate", "--weights", str(out), "--data", str(paired_dir), "--split", "val", "--json", str(report),
                           "--grid-count", "0", "--device", "cpu"]) == 0
    assert [r["name"] for r in json.loads(report.read_text())["per_image"]] == data.val_names
