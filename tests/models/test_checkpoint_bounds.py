"""A checkpoint's model_config is checked before any network is built: its sizes are bounded and
must fit the stored tensors, so an edited or damaged file is refused by key, taking no memory;
and a legacy (non-zip) file that would run code is refused naming the code."""
from __future__ import annotations

import pytest
import torch

from nirvision.config import ConfigError
from nirvision.models import CheckpointError, load_networks, parse_model_config, read_checkpoint, save_checkpoint
from nirvision.models import registry
from nirvision.models.checkpoint import _pickle_globals
from nirvision.models.registry import INFERENCE_ROLES


@pytest.fixture()
def saved(lite, tmp_path):
    nets = {role: lite.build(role) for role in lite.networks}
    return save_checkpoint(tmp_path / "all.pt", lite, nets)


def edited(path, out, edit):
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, out)
    return out


@pytest.fixture()
def built_where(monkeypatch):
    """The device type each network was built on ('meta': shapes only, no memory)."""
    where = []
    build = registry.NetworkSpec.build

    def spy(self):
        where.append(torch.empty(0).device.type)
        return build(self)

    monkeypatch.setattr(registry.NetworkSpec, "build", spy)
    return where


# --- bounds on any model config (YAML or a checkpoint's) ----------------------------------


@pytest.mark.parametrize(
    "role,key,value,most",
    [
        ("colorizer", "width", 257, 256),
        ("colorizer", "depth", 10**6, 8),
        ("nir_to_gray", "scales", 7, 6),
        ("colorizer", "stem", 17, 16),
        ("colorizer", "max_width_mult", 65, 64),
        ("colorizer", "ca_reduction", 257, 256),
        ("image_discriminator", "width", 100000, 256),
        ("feature_discriminator", "layers", 7, 6),
    ],
)
def test_sizes_beyond_their_range_are_refused_naming_key_and_range(lite, role, key, value, most):
    data = lite.to_dict()
    data[role][key] = value
    with pytest.raises(ConfigError) as err:
        parse_model_config(data, source="model.yaml")
    assert err.value.key == f"{role}.{key}"
    assert str(err.value) == f"model.yaml: key '{role}.{key}': expected an integer from 1 to {most}, got {value}"


def test_the_largest_sizes_are_accepted_and_the_widest_unet_level_is_bounded(lite):
    data = lite.to_dict()
    data["colorizer"].update(width=256, depth=8, max_width_mult=8)  # 2048 channels at most
    assert parse_model_config(data).networks["colorizer"].config.width == 256
    data["colorizer"].update(max_width_mult=16)
    with pytest.raises(ConfigError) as err:
        parse_model_config(data, source="model.yaml")
    assert err.value.key == "colorizer"
    assert "has 4096 channels; expected at most 2048" in str(err.value)


@pytest.mark.parametrize("key,value", [("width", 100000), ("depth", 10**6)])
def test_a_checkpoint_asking_for_a_huge_network_is_refused_before_building_it(saved, tmp_path, built_where, key, value):
    bad = edited(saved, tmp_path / "big.pt", lambda p: p["model_config"]["colorizer"].__setitem__(key, value))
    with pytest.raises(ConfigError) as err:
        load_networks(bad)
    assert str(err.value).startswith(f"checkpoint {bad} (model_config): key 'colorizer.{key}': expected an integer from 1 to")
    assert built_where == []


# --- the config against the stored tensors ------------------------------------------------


@pytest.mark.parametrize(
    "role,key,value,stored,told",
    [
        ("colorizer", "width", 200, 16, "heads.0.weight (16, 16, 3, 3)"),
        ("colorizer", "depth", 5, 2, "febs.0.encoders.{0,1}"),
        ("nir_to_gray", "scales", 2, 3, "heads.{0,1,2}"),
        ("colorizer", "stem", 2, 4, "heads.0.weight (16, 16, 3, 3)"),
        ("image_discriminator", "layers", 5, 3, "4x4 convs net.{0,2,5,8,11}"),
        ("feature_discriminator", "width", 64, 16, "net.0.weight (16, 3, 4, 4)"),
    ],
)
def test_a_config_that_does_not_fit_its_tensors_names_the_key_both_values_and_builds_nothing(saved, tmp_path, built_where, role, key, value, stored, told):
    bad = edited(saved, tmp_path / "edited.pt", lambda p: p["model_config"][role].__setitem__(key, value))
    with pytest.raises(CheckpointError) as err:
        load_networks(bad, roles=(role,))
    assert str(err.value) == (f"checkpoint {bad}, network '{role}': model config key '{role}.{key}' is {value}, its tensors were saved with "
                              f"{stored} ({told}); expected the model config they were saved with")
    assert built_where == []


def test_a_size_the_tensors_do_not_tell_is_found_on_the_meta_device(saved, tmp_path, built_where):
    bad = edited(saved, tmp_path / "ca.pt", lambda p: p["model_config"]["colorizer"].__setitem__("ca_reduction", 2))
    with pytest.raises(CheckpointError) as err:
        load_networks(bad)
    assert f"checkpoint {bad}, network 'colorizer' does not fit the model: shape differs: " in str(err.value)
    assert "checkpoint (4,) vs model (8,)" in str(err.value)
    assert set(built_where) == {"meta"}  # each network checked, none built for real


def test_every_network_is_checked_before_any_is_built(saved, tmp_path, built_where):
    bad = edited(saved, tmp_path / "late.pt", lambda p: p["model_config"]["colorizer"].__setitem__("width", 8))
    with pytest.raises(CheckpointError, match=r"'colorizer.width' is 8"):
        load_networks(bad)  # nir_to_gray first: it fits, yet is not built before colorizer is checked
    assert set(built_where) == {"meta"}


def test_a_fitting_checkpoint_loads_its_weights(saved, built_where):
    payload = torch.load(saved, weights_only=True)
    _, nets, _ = load_networks(saved)
    assert built_where == ["meta", "meta", "cpu", "cpu"]
    for role in INFERENCE_ROLES:
        stored = payload["networks"][role]
        assert all(torch.equal(v, stored[k]) for k, v in nets[role].state_dict().items())


def test_anything_but_tensors_for_a_network_is_refused(saved, tmp_path):
    bad = edited(saved, tmp_path / "odd.pt", lambda p: p["networks"]["colorizer"].__setitem__("heads.0.weight", [1, 2]))
    with pytest.raises(CheckpointError) as err:
        load_networks(bad)
    assert str(err.value) == f"checkpoint {bad}, network 'colorizer': expected a mapping of tensor names to tensors, got 'heads.0.weight': list"


# --- legacy (non-zip) torch files ---------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('executed')",))


def test_a_legacy_file_that_runs_code_is_refused_naming_it(saved, tmp_path):
    payload = torch.load(saved, weights_only=True)
    marker = tmp_path / "executed.txt"
    payload["meta"] = {"note": _RunsCode(marker)}
    hostile = tmp_path / "legacy.pt"
    torch.save(payload, hostile, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(hostile)
    assert str(err.value).startswith(f"checkpoint {hostile}: refused: the file asks to run code (builtins.exec); nirvision loads weights only")
    assert not marker.exists()
    # the code is in the 4th of the file's pickles (after the magic number, protocol and system info)
    assert "builtins.exec" in _pickle_globals(hostile)


def test_a_legacy_file_of_weights_loads_and_has_only_tensor_globals(saved, tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(saved, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    _, nets, _ = load_networks(legacy)
    assert set(nets) == set(INFERENCE_ROLES)
    assert "torch._utils._rebuild_tensor_v2" in _pickle_globals(legacy)  # the object's pickle is read, not the storage bytes after it
