"""What the hardware offers the backends: native bf16 on the CPU, the GPU's name."""
from __future__ import annotations

import functools
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512 BF16 or AMX); else bf16 is emulated, slowly."""
    flags = cpu_flags()
    if flags:
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    mkldnn = getattr(torch.ops, "mkldnn", None)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) if mkldnn is not None else False
    except (AttributeError, RuntimeError):
        return False
