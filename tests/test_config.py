"""Strict YAML -> dataclass loading: every mistake names the file, the key and what was expected."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from nirvision.config import ConfigError, load_dataclass, load_yaml, read_yaml, to_dict
from nirvision.models import load_model_config, parse_model_config
from nirvision.resources import model_config_path


@dataclass
class Inner:
    size: int
    scale: float = 1.0


@dataclass
class Outer:
    name: str
    inner: Inner
    mode: Literal["fast", "exact"] = "fast"
    sizes: list[int] = field(default_factory=list)
    limit: Optional[int] = None
    on: bool = True

    def validate(self):
        if self.inner.size > 100:
            raise ValueError("inner.size must be at most 100")


def write(tmp_path, data, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def error_of(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    return err.value


def test_good_file_loads_typed(tmp_path):
    path = write(tmp_path, {"name": "a", "inner": {"size": 3, "scale": 2}, "sizes": [1, 2], "mode": "exact", "limit": 5})
    obj = load_yaml(Outer, path)
    assert obj == Outer("a", Inner(3, 2.0), "exact", [1, 2], 5, True)
    assert isinstance(obj.inner.scale, float)
    assert load_dataclass(Outer, to_dict(obj)) == obj


@pytest.mark.parametrize(
    "data,key,expected",
    [
        ({"name": "a", "inner": {"size": 3}, "colour": 1}, "colour", "unknown key; expected one of: inner, limit, mode, name, on, sizes"),
        ({"name": "a", "inner": {"size": 3, "sise": 1}}, "inner.sise", "unknown key; expected one of: scale, size"),
        ({"name": "a"}, "inner", "missing"),
        ({"name": "a", "inner": {}}, "inner.size", "missing; expected an integer"),
        ({"name": "a", "inner": {"size": "3"}}, "inner.size", "expected an integer, got '3'"),
        ({"name": "a", "inner": {"size": 3.0}}, "inner.size", "expected an integer, got 3.0"),
        ({"name": "a", "inner": {"size": True}}, "inner.size", "expected an integer, got True"),
        ({"name": 5, "inner": {"size": 3}}, "name", "expected a string, got 5"),
        ({"name": "a", "inner": {"size": 3}, "on": "yes"}, "on", "expected true or false"),
        ({"name": "a", "inner": {"size": 3}, "mode": "slow"}, "mode", "expected one of 'fast', 'exact', got 'slow'"),
        ({"name": "a", "inner": {"size": 3}, "sizes": [1, "x"]}, "sizes[1]", "expected an integer"),
        ({"name": "a", "inner": {"size": 3}, "sizes": 4}, "sizes", "expected a list of an integer"),
        ({"name": "a", "inner": {"size": 3}, "limit": "none"}, "limit", "expected an integer or null"),
        ({"name": "a", "inner": 7}, "inner", "expected a mapping (Inner)"),
    ],
)
def test_mistakes_name_file_and_key(tmp_path, data, key, expected):
    path = write(tmp_path, data)
    err = error_of(load_yaml, Outer, path)
    assert err.source == str(path)
    assert err.key == key
    assert str(err).startswith(f"{path}: key '{key}': ")
    assert expected in str(err)


def test_validate_errors_become_config_errors(tmp_path):
    path = write(tmp_path, {"name": "a", "inner": {"size": 300}})
    err = error_of(load_yaml, Outer, path)
    assert str(path) in str(err) and "inner.size must be at most 100" in str(err)


def test_file_problems(tmp_path):
    err = error_of(read_yaml, tmp_path / "absent.yaml")
    assert "absent.yaml" in str(err) and "file not found" in str(err)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    err = error_of(read_yaml, bad)
    assert str(bad) in str(err) and "not valid YAML" in str(err)
    top = write(tmp_path, [1, 2], "list.yaml")
    err = error_of(load_yaml, Outer, top)
    assert str(top) in str(err) and "expected a mapping (Outer)" in str(err)


# --- model configs -----------------------------------------------------------------------


def bundled(name):
    return yaml.safe_load(model_config_path(name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["lite", "paper"])
def test_bundled_model_configs_load(name):
    cfg = load_model_config(name, require_training=True)
    assert cfg.name == name
    assert set(cfg.networks) == {"nir_to_gray", "colorizer", "gray_to_nir", "image_discriminator", "feature_discriminator"}
    assert (cfg.networks["colorizer"].config.in_channels, cfg.networks["colorizer"].config.out_channels) == (1, 3)
    assert cfg.networks["colorizer"].config.scales == 3
    # to_dict round trip (what a checkpoint stores)
    assert parse_model_config(cfg.to_dict(), require_training=True) == cfg
    # by path as well as by name
    assert load_model_config(model_config_path(name)) == load_model_config(name)


def edited(edit):
    data = bundled("lite")
    edit(data)
    return data


@pytest.mark.parametrize(
    "edit,key,expected",
    [
        (lambda d: d.__setitem__("colourizer", {}), "colourizer", "unknown key"),
        (lambda d: d["colorizer"].__setitem__("widht", 8), "colorizer.widht", "unknown key"),
        (lambda d: d["colorizer"].pop("width"), "colorizer.width", "missing; expected an integer"),
        (lambda d: d.pop("colorizer"), "colorizer", "missing"),
        (lambda d: d.pop("name"), "name", "expected a string"),
        (lambda d: d["colorizer"].__setitem__("width", "16"), "colorizer.width", "expected an integer, got '16'"),
        (lambda d: d["colorizer"].__setitem__("depth", 2.5), "colorizer.depth", "expected an integer"),
        (lambda d: d["colorizer"].__setitem__("type", "resnet"), "colorizer.type", "unknown network type 'resnet'; expected one of: mpfnet, patchgan"),
        (lambda d: d["colorizer"].pop("type"), "colorizer.type", "missing"),
        (lambda d: d.__setitem__("image_discriminator", {**d["colorizer"]}), "image_discriminator.type", "expected 'patchgan' for this role, got 'mpfnet'"),
        (lambda d: d["colorizer"].__setitem__("out_channels", 1), "colorizer", "expected in_channels=1, out_channels=3, got 1, 1"),
        (lambda d: d["nir_to_gray"].__setitem__("out_channels", 3), "nir_to_gray", "expected in_channels=1, out_channels=1, got 1, 3"),
        (lambda d: d["gray_to_nir"].update(in_channels=3, out_channels=3), "gray_to_nir", "expected in_channels=1, out_channels=1, got 3, 3"),
        (lambda d: d["image_discriminator"].__setitem__("in_channels", 3), "image_discriminator.in_channels", "expected 1, got 3"),
        (lambda d: d["feature_discriminator"].__setitem__("in_channels", 1), "feature_discriminator.in_channels", "expected 3, got 1"),
        (lambda d: d["colorizer"].__setitem__("width", 0), "colorizer", "width must be a positive integer"),
        (lambda d: d.__setitem__("colorizer", [1, 2]), "colorizer", "expected a mapping with a 'type' key"),
    ],
)
def test_bad_model_configs_name_file_and_key(tmp_path, edit, key, expected):
    path = write(tmp_path, edited(edit), "model.yaml")
    err = error_of(load_model_config, path)
    assert err.source == str(path), str(err)
    assert err.key == key, str(err)
    assert str(path) in str(err) and f"'{key}'" in str(err)
    assert expected in str(err)


def test_training_roles_required_only_when_asked(tmp_path):
    path = write(tmp_path, edited(lambda d: d.pop("gray_to_nir")), "model.yaml")
    assert "gray_to_nir" not in load_model_config(path).networks
    err = error_of(load_model_config, path, require_training=True)
    assert err.key == "gray_to_nir" and str(path) in str(err)


def test_unknown_bundled_name():
    err = error_of(load_model_config, "huge")
    assert "huge" in str(err) and "lite" in str(err) and "paper" in str(err)


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads ``2e-4`` as text; a float field takes it as the number it means."""
    import dataclasses

    @dataclasses.dataclass
    class Rate:
        lr: float

    assert load_dataclass(Rate, {"lr": "2e-4"}).lr == 2e-4
    assert load_dataclass(Rate, {"lr": "1E3"}).lr == 1000.0
    with pytest.raises(ConfigError, match="key 'lr': expected a number, got 'fast'"):
        load_dataclass(Rate, {"lr": "fast"})
