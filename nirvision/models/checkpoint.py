"""Checkpoints: one file with the model config and the weights, loaded without executing code.

The file is a ``torch.save`` of plain containers and tensors, read back with
``torch.load(weights_only=True)``, so a hostile file cannot run code on load.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .registry import INFERENCE_ROLES, ModelConfig, parse_model_config

log = logging.getLogger(__name__)

FORMAT = "nirvision-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, of another format, or does not fit its model."""


def save_checkpoint(path: str | Path, config: ModelConfig, networks: Mapping[str, nn.Module | Mapping[str, torch.Tensor]], meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``networks`` (role -> module or state dict) with ``config`` to ``path`` atomically."""
    path = Path(path)
    states = {}
    for role, net in networks.items():
        sd = net.state_dict() if isinstance(net, nn.Module) else net
        states[role] = {k: v.detach().cpu().clone() for k, v in sd.items()}
    payload = {"format": FORMAT, "version": VERSION, "model_config": config.to_dict(), "networks": states, "meta": dict(meta or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except BaseException:  # a full disk, a folder in the way, Ctrl-C: no half-written file left behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Read and check the envelope of a checkpoint file; tensors stay on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        text = str(exc)
        if isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in text:  # weights_only met a class or function
            raise CheckpointError(f"checkpoint {path}: refused: it holds objects other than tensors and plain containers, and "
                                  "loading those could run code; expected a file written by nirvision") from None
        # torch's weights-only message starts with advice on weights_only=False, which is not ours to give
        reason = type(exc).__name__ if isinstance(exc, pickle.UnpicklingError) or not text else f"{type(exc).__name__}: {text.splitlines()[0]}"
        raise CheckpointError(f"checkpoint {path}: cannot be read ({path.stat().st_size} bytes; truncated, damaged or not a checkpoint: {reason}); "
                              "expected a file written by nirvision (training's --export, or the bundled nirvision/weights/mpfnet-lite.pt)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a nirvision checkpoint (expected a file written by nirvision's save_checkpoint)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {payload.get('version')!r}, this nirvision reads version {VERSION}")
    return payload


def checkpoint_config(payload: dict, path: str | Path = "") -> ModelConfig:
    return parse_model_config(payload["model_config"], source=f"checkpoint {path} (model_config)")


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` strictly; on mismatch say which tensors differ and how."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing from checkpoint", missing), ("not in model", unexpected), ("shape differs", shapes)):
            if items:
                shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"{what} does not fit the model: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def load_networks(path: str | Path, roles=INFERENCE_ROLES, config: ModelConfig | None = None) -> tuple[ModelConfig, dict[str, nn.Module], dict]:
    """Build the networks of ``roles`` from the checkpoint (or from ``config``) and load them."""
    payload = read_checkpoint(path)
    stored = checkpoint_config(payload, path)
    config = config or stored
    nets = {}
    for role in roles:
        if role not in config.networks:
            raise CheckpointError(f"checkpoint {path}: model config has no network '{role}'")
        if role not in payload["networks"]:
            raise CheckpointError(f"checkpoint {path}: holds no weights for '{role}' (it has: {', '.join(payload['networks'])})")
        net = config.build(role)
        load_into(net, payload["networks"][role], f"checkpoint {path}, network '{role}'")
        nets[role] = net
    return config, nets, payload.get("meta", {})
