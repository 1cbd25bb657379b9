import cv2
import numpy as np
import pytest
import torch

from nirvision.config import load_dataclass
from nirvision.datasets import PairedSet, find_overlaps, load_paired, split_names, validation_split
from nirvision.errors import InputError
from train.augment import augment
from train.config import DataConfig


def _cfg(**kw):
    return load_dataclass(DataConfig, {"root": "x", **kw})


@pytest.mark.parametrize("kw", [
    {"contrast": 0.0, "hflip": False, "scale_min": 1.0, "scale_max": 1.0, "crop_min": 1.0},  # identity geometry
    {"contrast": 0.0, "hflip": True, "scale_min": 1.0, "scale_max": 1.0, "crop_min": 1.0},  # mirroring only
    {"contrast": 0.0, "scale_min": 1.2, "scale_max": 1.5},  # scaling
    {"contrast": 0.0, "crop_min": 0.3, "crop_max": 0.6},  # random-size crop
    {"contrast": 0.5},  # contrast (with everything else)
])
def test_each_augmentation_keeps_a_pair_aligned(kw):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    nir = (0.6 * xx + 0.3 * torch.sin(5 * yy)).expand(4, 1, 64, 64)
    rgb = nir.expand(4, 3, 64, 64)  # the partner: the same picture in every colour channel
    out = augment(torch.cat([nir, rgb], 1), _cfg(**kw), 48, g, channels_split=1)
    assert out.shape == (4, 4, 48, 48)
    for c in range(1, 4):
        assert torch.allclose(out[:, c], out[:, 0], atol=1e-5)
    if kw.get("crop_min") == 1.0 and kw.get("hflip") is False:
        ref = torch.nn.functional.interpolate(nir, size=48, mode="bilinear", align_corners=False, antialias=False)
        assert torch.allclose(out[:, :1], ref, atol=0.05)
    else:
        assert not torch.allclose(out[:, :1], torch.nn.functional.interpolate(nir, size=48, mode="bilinear"), atol=0.05)


def test_mirroring_flips_left_right():
    g = torch.Generator().manual_seed(1)
    ramp = torch.linspace(-1, 1, 32).expand(16, 1, 32, 32)
    out = augment(ramp.clone(), _cfg(contrast=0.0, scale_min=1.0, scale_max=1.0, crop_min=1.0), 32, g)
    left_minus_right = out[:, 0, :, 0].mean(1) - out[:, 0, :, -1].mean(1)
    flipped = left_minus_right > 0
    assert 0 < int(flipped.sum()) < 16  # some flipped, some not


def test_split_is_seeded_per_category_and_by_photo_group():
    names = [f"{c}_{i:04d}" for c in ("field", "forest") for i in range(40)]
    tr, va = split_names(names, 0.1, seed=5, group=4)
    assert split_names(names, 0.1, seed=5, group=4) == (tr, va)
    assert any(split_names(names, 0.1, seed=s, group=4)[1] != va for s in (6, 7, 8))  # the seed chooses the split
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == len(names)
    for cat in ("field", "forest"):
        assert 1 <= sum(n.startswith(cat) for n in va) <= 8
    groups = {(n.split("_")[0], int(n.split("_")[1]) // 4) for n in va}
    for n in tr:  # no photo group is split across train and validation
        assert (n.split("_")[0], int(n.split("_")[1]) // 4) not in groups


def test_unpaired_and_bad_images_are_reported(tmp_path):
    from .conftest import make_paired_folder

    root = make_paired_folder(tmp_path / "d", count=4, size=32)
    (root / "nir" / "field_0099.png").write_bytes((root / "nir" / "field_0000.png").read_bytes())
    with pytest.raises(InputError, match="unpaired images.*field_0099"):
        load_paired(root)
    ds = load_paired(root, skip_bad=True)
    assert len(ds) == 4 and "field_0099" in ds.skipped
    (root / "nir" / "field_0099.png").unlink()
    (root / "rgb" / "field_0002.png").write_text("not an image")
    with pytest.raises(InputError, match="field_0002.png: not a readable image"):
        load_paired(root)
    with pytest.raises(InputError, match="expected 64x64"):
        load_paired(root, size=(64, 64), names=["field_0000"])
    with pytest.raises(InputError, match="folder not found"):
        load_paired(tmp_path / "missing")


def _texture(rng, h, w):
    """A photograph-like gray image: smooth shading plus fine detail."""
    shade = cv2.resize(rng.random((4, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    detail = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.0)
    return np.clip(120 * shade + 400 * (detail - detail.mean()) + 60, 0, 255).astype(np.uint8)


def test_find_overlaps_finds_crops_of_one_photograph_and_nothing_else():
    rng = np.random.default_rng(3)
    photo = _texture(rng, 256, 400)
    noise = rng.integers(-2, 3, (256, 256))
    images = {
        "field_0001": photo[:, :256],
        "field_0007": np.clip(photo[:, 130:386] + noise, 0, 255).astype(np.uint8),  # overlaps 0001 by 126 columns
        "forest_0001": photo[:, 130:386],  # the same pixels, another category: not compared
    }
    for i in range(2, 7):
        images[f"field_{i:04d}"] = _texture(rng, 256, 256)
    smooth = cv2.resize(rng.random((8, 8)).astype(np.float32), (256, 256), interpolation=cv2.INTER_CUBIC)
    images["field_0008"] = (255 * smooth).astype(np.uint8)  # no fine detail: matches nothing
    found = find_overlaps(images)
    assert [(o.a, o.b, o.dy, o.dx) for o in found] == [("field_0001", "field_0007", 0, 130)]
    assert found[0].score > 0.9 and abs(found[0].shared - 126 / 256) < 1e-6


def test_split_keeps_linked_names_together_and_refuses_an_empty_side():
    names = [f"field_{i:04d}" for i in range(20)]
    together = [("field_0000", "field_0013"), ("field_0013", "field_0019"), ("field_0004", "field_0005")]
    for seed in range(10):
        tr, va = split_names(names, 0.2, seed=seed, together=together)
        assert set(tr).isdisjoint(va) and len(tr) + len(va) == 20 and va
        for group in (("field_0000", "field_0013", "field_0019"), ("field_0004", "field_0005")):
            assert len({n in va for n in group}) == 1  # all on one side
    ds = PairedSet([f"field_{i:04d}" for i in range(3)], [np.zeros((8, 8), np.uint8)] * 3, [np.zeros((8, 8, 3), np.uint8)] * 3)
    with pytest.raises(InputError, match="cannot be split"):
        validation_split(ds, 0.2, group=10, by_content=False)  # the 3 pairs are one group: nothing left to validate on


def test_real_vcip_split_keeps_overlapping_crops_on_one_side():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "vcip2020" / "train"
    if not root.is_dir():
        pytest.skip("shared VCIP data not present")
    data = load_paired(root)
    gray = {n: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for n, rgb in zip(data.names, data.rgb)}
    overlaps = find_overlaps(gray)
    pairs = {(o.a, o.b): (o.dy, o.dx) for o in overlaps}
    # crops checked by eye and by pixel difference (under 1 grey level on the shared half)
    assert abs(pairs[("forest_0006", "forest_0053")][1]) == 130
    assert abs(pairs[("mountain_0029", "mountain_0044")][1]) == 130
    assert 150 <= len(overlaps) <= 220
    tr, va = validation_split(data, 0.08, seed=0)
    assert len(data) == 364 and set(tr).isdisjoint(va)
    val = set(va)
    assert all((o.a in val) == (o.b in val) for o in overlaps)
    for cat in ("country", "field", "forest", "mountain"):
        n_cat = sum(n.startswith(cat) for n in data.names)
        n_val = sum(n.startswith(cat) for n in va)
        assert 0.06 * n_cat <= n_val <= 0.14 * n_cat


def test_stage_augmentation_overrides_the_data_section(paired_dir, tmp_path):
    from train.config import StageConfig
    from train.data import TrainData
    from tests.train.conftest import tiny_config

    cfg = tiny_config(paired_dir, tmp_path, crop=64, crop_min=0.3, crop_max=0.5)
    stage_data = cfg.translate.data_for_stage(cfg.data)
    assert (stage_data.crop, stage_data.crop_min, stage_data.crop_max) == (64, 0.3, 0.5)
    assert (stage_data.image_size, stage_data.root) == (cfg.data.image_size, cfg.data.root)
    assert cfg.data.crop == 128  # the data section itself is unchanged
    data = TrainData(cfg.data, 0)
    batch = next(data.batches(torch.Generator().manual_seed(0), 2, 0, 1, 1, stage_data.crop, aug=stage_data))
    assert batch.nir.shape == (2, 1, 64, 64) and batch.rgb.shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="crop_min"):
        StageConfig(epochs=1, crop_min=0.9, crop_max=0.5).data_for_stage(cfg.data)
    with pytest.raises(ValueError, match="pixel_loss"):
        StageConfig(epochs=1, pixel_loss="huber").validate()
