"""Paired NIR/RGB folders: what is refused or reported when reading them."""
import cv2
import numpy as np
import pytest

from nirvision.datasets import load_paired, validation_split
from nirvision.errors import InputError
from tests.train.conftest import make_paired_folder


def test_two_images_of_one_name_are_refused(tmp_path):
    data = make_paired_folder(tmp_path / "d", count=2, size=32)
    cv2.imwrite(str(data / "rgb" / "forest_0001.jpg"), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match=r"forest_0001.jpg and forest_0001.png: two images named 'forest_0001'; expected one image per name in .*rgb"):
        load_paired(data)


def test_rgb_images_without_colour_are_reported(tmp_path, caplog):
    data = make_paired_folder(tmp_path / "d", count=3, size=32)
    cv2.imwrite(str(data / "rgb" / "field_0000.png"), np.full((32, 32), 90, np.uint8))  # a gray "truth"
    with caplog.at_level("WARNING", logger="nirvision.datasets"):
        pairs = load_paired(data)
    assert len(pairs) == 3 and pairs.root == str(data)
    said = [r.getMessage() for r in caplog.records]
    assert any("1 of the rgb/ images hold no colour (field_0000)" in m for m in said), said


def test_a_split_that_cannot_be_made_names_the_folder(tmp_path):
    data = make_paired_folder(tmp_path / "d", count=1, size=32)
    with pytest.raises(InputError, match=rf"{tmp_path / 'd'}: 1 image pairs cannot be split"):
        validation_split(load_paired(data), by_content=False)


def test_16_bit_nir_of_12_bit_values_is_read_by_its_depth(tmp_path):
    """Mono12 pairs score on the picture colorize would see, not on its top 4 bits."""
    from nirvision.datasets import read_gray

    ramp = np.tile(np.linspace(0, 4095, 64).round().astype(np.uint16), (8, 1))
    cv2.imwrite(str(tmp_path / "n.png"), ramp)
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([ramp] * 3))
    for name in ("n.png", "c.png"):
        gray = read_gray(tmp_path / name)
        assert gray.dtype == np.uint8 and gray.max() == 255 and np.array_equal(gray, (ramp >> 4).astype(np.uint8))


def test_the_overlap_search_is_cached_for_the_same_pictures(tmp_path, monkeypatch):
    import nirvision.datasets as datasets

    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    calls = []
    real = datasets.find_overlaps
    monkeypatch.setattr(datasets, "find_overlaps", lambda gray, **kw: calls.append(len(gray)) or real(gray, **kw))
    data = load_paired(make_paired_folder(tmp_path / "d", count=24, size=64))
    first = validation_split(data)
    assert validation_split(data) == first and calls == [24]  # the second split from the cache
    data.rgb[3] = 255 - data.rgb[3]  # another picture: searched again
    validation_split(data)
    assert calls == [24, 24]
    (next((tmp_path / "cache" / "overlaps").glob("*.json"))).write_text("[[\"nobody\", \"here\"]]")  # a bad entry is not trusted
    assert validation_split(data) is not None and len(calls) == 3


def test_16_bit_nir_of_one_folder_is_read_at_one_depth(tmp_path, caplog):
    """A dark Mono12 image (all values under 1024) is read at the folder's 12 bits, as colorize
    reads one stream, not as 10-bit and so 4x brighter than its bright neighbours."""
    data = make_paired_folder(tmp_path / "d", count=2, size=32)
    bright, dark = sorted((data / "nir").iterdir())
    nir = cv2.imread(str(bright), cv2.IMREAD_UNCHANGED).astype(np.uint32) * 4095 // 255
    cv2.imwrite(str(bright), nir.astype(np.uint16))
    cv2.imwrite(str(dark), (nir // 5).astype(np.uint16))
    caplog.set_level("WARNING", logger="nirvision.datasets")
    pairs = load_paired(data)
    assert np.array_equal(pairs.nir[0], (nir >> 4).astype(np.uint8)) and np.array_equal(pairs.nir[1], ((nir // 5) >> 4).astype(np.uint8))
    assert f"{data / 'nir'}: 2 16-bit image(s) with values up to {nir.max()}: all read as 12-bit, one scale for the folder" in caplog.text
    assert np.array_equal(load_paired(data, input_bits=16).nir[1], ((nir // 5) >> 8).astype(np.uint8))
    assert np.array_equal(load_paired(data, input_bits="10").nir[0], (np.minimum(nir, 1023) >> 2).astype(np.uint8))  # clipped, and said
    assert "above what 10 bits hold (1023)" in caplog.text
    with pytest.raises(InputError, match="input_bits 9"):
        load_paired(data, input_bits=9)
