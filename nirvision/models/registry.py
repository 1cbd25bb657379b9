"""The explicit registry from a YAML ``type:`` to a network class and its config dataclass."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ..config import ConfigError, load_dataclass, read_yaml, to_dict
from .discriminators import PatchDiscriminator, PatchGANConfig
from .feb import level_widths
from .mpfnet import MPFNet, MPFNetConfig

NETWORKS: dict[str, tuple[type[nn.Module], type]] = {
    "mpfnet": (MPFNet, MPFNetConfig),
    "patchgan": (PatchDiscriminator, PatchGANConfig),
}

# The networks of the paper by role. The first two make the inference chain; the rest
# are only needed for training.
INFERENCE_ROLES = ("nir_to_gray", "colorizer")
TRAINING_ROLES = ("gray_to_nir", "image_discriminator", "feature_discriminator")
ROLE_TYPES = {
    "nir_to_gray": "mpfnet",
    "colorizer": "mpfnet",
    "gray_to_nir": "mpfnet",
    "image_discriminator": "patchgan",
    "feature_discriminator": "patchgan",
}

# The largest value of each size a config may give, by network type: well above the paper's
# (MPFNet width 32, 4 UNet levels, 3 scales; PatchGAN 64 wide, 3 layers), yet far from sizes
# that take the machine's memory or build for minutes (a checkpoint's model_config is read
# before its tensors).
LIMITS: dict[str, dict[str, int]] = {
    "mpfnet": {"in_channels": 16, "out_channels": 16, "width": 256, "depth": 8, "scales": 6, "max_width_mult": 64, "ca_reduction": 256, "stem": 16},
    "patchgan": {"in_channels": 16, "width": 256, "layers": 6},
}
MAX_UNET_WIDTH = 2048  # channels of an MPFNet's widest UNet level (the paper's: 256)


@dataclass
class NetworkSpec:
    type: str
    config: Any

    def build(self) -> nn.Module:
        cls, _ = NETWORKS[self.type]
        return cls(self.config)

    def to_dict(self) -> dict:
        return {"type": self.type, **to_dict(self.config)}


@dataclass
class ModelConfig:
    """A model size: the networks of the paper by role (``configs/models/*.yaml``)."""

    name: str
    networks: dict[str, NetworkSpec]

    def to_dict(self) -> dict:
        return {"name": self.name, **{role: spec.to_dict() for role, spec in self.networks.items()}}

    def build(self, role: str) -> nn.Module:
        return self.networks[role].build()


def parse_network(data: Any, source: str, key: str) -> NetworkSpec:
    if not isinstance(data, Mapping):
        raise ConfigError(source, key, f"expected a mapping with a 'type' key, got {data!r}")
    if "type" not in data:
        raise ConfigError(source, f"{key}.type", f"missing; expected one of: {', '.join(NETWORKS)}")
    kind = data["type"]
    if kind not in NETWORKS:
        raise ConfigError(source, f"{key}.type", f"unknown network type {kind!r}; expected one of: {', '.join(NETWORKS)}")
    _, cfg_cls = NETWORKS[kind]
    body = {k: v for k, v in data.items() if k != "type"}
    config = load_dataclass(cfg_cls, body, source=source, prefix=key)  # checks the sizes are positive
    for name, most in LIMITS[kind].items():
        if getattr(config, name) > most:
            raise ConfigError(source, f"{key}.{name}", f"expected an integer from 1 to {most}, got {getattr(config, name)}")
    if kind == "mpfnet":
        widest = level_widths(config.width, config.depth, config.max_width_mult)[-1]
        if widest > MAX_UNET_WIDTH:
            raise ConfigError(source, key, f"the widest UNet level, width {config.width} x min(max_width_mult {config.max_width_mult}, "
                                           f"2**depth {2 ** config.depth}), has {widest} channels; expected at most {MAX_UNET_WIDTH}")
    return NetworkSpec(kind, config)


def parse_model_config(data: Any, source: str = "", require_training: bool = False) -> ModelConfig:
    """Mapping -> ``ModelConfig``; checks keys, network types and the chain's channel counts."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", f"expected a mapping of networks, got {data!r}")
    known = ("name",) + INFERENCE_ROLES + TRAINING_ROLES
    for key in data:
        if key not in known:
            raise ConfigError(source, str(key), f"unknown key; expected one of: {', '.join(known)}")
    if not isinstance(data.get("name"), str):
        raise ConfigError(source, "name", f"expected a string, got {data.get('name')!r}")
    required = INFERENCE_ROLES + (TRAINING_ROLES if require_training else ())
    networks = {}
    for role in INFERENCE_ROLES + TRAINING_ROLES:
        if role not in data:
            if role in required:
                raise ConfigError(source, role, "missing; expected a network mapping")
            continue
        spec = parse_network(data[role], source, role)
        if spec.type != ROLE_TYPES[role]:
            raise ConfigError(source, f"{role}.type", f"expected {ROLE_TYPES[role]!r} for this role, got {spec.type!r}")
        networks[role] = spec
    expect = {"nir_to_gray": (1, 1), "colorizer": (1, 3), "gray_to_nir": (1, 1)}
    for role, (c_in, c_out) in expect.items():
        if role in networks:
            cfg = networks[role].config
            if (cfg.in_channels, cfg.out_channels) != (c_in, c_out):
                raise ConfigError(source, role, f"expected in_channels={c_in}, out_channels={c_out}, got {cfg.in_channels}, {cfg.out_channels}")
    disc = {"image_discriminator": 1, "feature_discriminator": 3}
    for role, c_in in disc.items():
        if role in networks and networks[role].config.in_channels != c_in:
            raise ConfigError(source, f"{role}.in_channels", f"expected {c_in}, got {networks[role].config.in_channels}")
    return ModelConfig(data["name"], networks)


CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "models"


def load_model_config(path_or_name: str | Path, require_training: bool = False) -> ModelConfig:
    """Load ``configs/models/NAME.yaml`` by name (``lite``, ``paper``) or a YAML file by path."""
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        from .. import resources

        path = resources.model_config_path(str(path_or_name))
    return parse_model_config(read_yaml(path), source=str(path), require_training=require_training)
