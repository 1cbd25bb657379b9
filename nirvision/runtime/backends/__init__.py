"""Inference backends behind one interface, by name (``--backend``)."""
from __future__ import annotations

import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendInfo, BackendUnavailable
from .eager import EagerBackend

BACKENDS: dict[str, type[Backend]] = {
    "eager": EagerBackend,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` / None -> CUDA when present, else CPU; a CUDA device that is absent is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device!r}: CUDA is not available here (torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA)")
    return dev


def create_backend(name: str, net: NIRColorizerNet, device: str | torch.device | None = "auto", precision: str = "fp32", **options) -> Backend:
    """Build backend ``name`` around ``net``; raises ``BackendUnavailable`` with the reason."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"backend {name!r} is unknown; expected one of: {', '.join(BACKENDS)}")
    return BACKENDS[name](net, resolve_device(device), precision, **options)


__all__ = ["BACKENDS", "Backend", "BackendInfo", "BackendUnavailable", "EagerBackend", "create_backend", "resolve_device"]
