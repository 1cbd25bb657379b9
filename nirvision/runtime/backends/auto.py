"""``--backend auto``: the fastest backend that can run here at the asked precision, and why.

The order is what benchmarks measured (``nirvision bench``; benchmarks/README.md): on CUDA,
TensorRT, then ONNX Runtime's GPU providers, then eager; on the CPU in fp32, OpenVINO first where
the CPU has AVX-512 (a Xeon with AMX: 1.15x ONNX Runtime at 640x480 with 2 workers each, 0.96x at
256x256; in bf16 1.3-5.8x) and ONNX Runtime first where it has not (an AVX2 EPYC, session 7:
ONNX Runtime 1.06-1.13x OpenVINO at 256x256 and 1.11-1.16x at 640x480, 2 workers each, two runs),
then eager; int8: OpenVINO, then ONNX Runtime. torch.compile comes only after OpenVINO for bf16
and is left out for fp32: it is slower than both runtimes on the CPU and compiles for minutes
on 2 cores before the first frame.
bf16 on a CPU without native bf16 (AVX-512 BF16 / AMX) is never picked: it runs on slow
fallback kernels. Each candidate is built in turn; one that raises ``BackendUnavailable``
is skipped with its reason logged, so ``auto`` never returns an unusable backend.
With ``probe_shape``, every usable candidate is timed on that input and the fastest wins.

What ``auto`` picks for the CPU (ONNX Runtime or OpenVINO) builds a model for each input size
(an ONNX export: seconds for lite on 2 cores), once, kept in the artefact cache. A video has one
size and a folder of frames mostly does; a folder of pictures of many sizes pays it per size,
where eager would have run each picture in a fraction of that. The sizes are not known before
the pictures are read, so the choice stays, and the engine says once, at the first picture of
another size, what each new size costs and that ``--backend eager`` avoids it
(``sizes_vary_hint``).
"""
from __future__ import annotations

import logging
import time

import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendUnavailable
from .hardware import cpu_flags, cpu_has_fast_bf16

log = logging.getLogger(__name__)


def candidates(device: torch.device, precision: str) -> list[str]:
    """Backend names worth trying, fastest first, for ``device`` and ``precision``."""
    if device.type == "cuda":
        order = {"fp16": ["tensorrt", "onnxruntime", "eager"], "fp32": ["tensorrt", "onnxruntime", "eager"],
                 "bf16": ["eager"], "int8": ["onnxruntime"]}
    else:
        fp32 = ["openvino", "onnxruntime", "eager"] if "avx512f" in cpu_flags() else ["onnxruntime", "openvino", "eager"]
        order = {"fp32": fp32, "int8": ["openvino", "onnxruntime"],
                 "bf16": ["openvino", "compile", "eager"] if cpu_has_fast_bf16() else [], "fp16": []}
    if precision not in order:
        raise BackendUnavailable(f"auto: precision {precision!r} is unknown; expected fp32, fp16, bf16 or int8")
    names = order[precision]
    if not names:
        if precision == "bf16":
            raise BackendUnavailable("auto: this CPU has no native bf16 (AVX-512 BF16 / AMX), so bf16 would be slower than fp32; "
                                     "use --precision fp32, or name a backend (e.g. --backend eager) to run bf16 anyway")
        raise BackendUnavailable(f"auto: no backend runs {precision} on {device} (fp16 needs CUDA; on the CPU use fp32, bf16 or int8)")
    return names


def _time(backend: Backend, shape: tuple[int, ...], repeats: int = 3) -> float:
    x = torch.zeros(shape)
    backend.infer(x)  # builds / compiles, warms up
    start = time.perf_counter()
    for _ in range(repeats):
        backend.infer(x)
    return (time.perf_counter() - start) / repeats


def select_backend(net: NIRColorizerNet, device: torch.device, precision: str = "fp32", probe_shape: tuple[int, ...] | None = None, **options) -> Backend:
    """Build the first usable candidate (or, with ``probe_shape``, the fastest); record why on ``.chosen_because``."""
    from . import BACKENDS

    skipped: list[str] = []
    usable: list[Backend] = []
    for name in candidates(device, precision):
        try:
            backend = BACKENDS[name](net, device, precision, **{k: v for k, v in options.items() if k in accepted_options(name)})
        except BackendUnavailable as exc:
            skipped.append(f"{name}: {exc}")
            log.info("auto: skipping %s (%s)", name, exc)
            continue
        usable.append(backend)
        if probe_shape is None:
            break
    if not usable:
        raise BackendUnavailable(f"auto: no usable backend for {precision} on {device}: " + "; ".join(skipped))
    if probe_shape is None:
        chosen = usable[0]
        why = "first usable in the measured order" + (f" (skipped {'; '.join(skipped)})" if skipped else "")
    else:
        timings = {}
        for b in usable:
            try:
                timings[b.name] = _time(b, probe_shape)
            except BackendUnavailable as exc:
                skipped.append(f"{b.name}: {exc}")
        if not timings:
            raise BackendUnavailable(f"auto: no backend ran {precision} on {device} at {probe_shape}: " + "; ".join(skipped))
        chosen = next(b for b in usable if b.name == min(timings, key=timings.get))
        why = "fastest on " + "x".join(map(str, probe_shape)) + ": " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items())
        for b in usable:
            if b is not chosen:
                b.close()
    chosen.chosen_because = why
    log.info("auto: chose backend %s (%s on %s): %s", chosen.name, precision, device, why)
    return chosen


def accepted_options(name: str) -> set[str]:
    """Keyword options the backend ``name`` takes (so one option set can go to every candidate)."""
    import inspect

    from . import BACKENDS

    params = inspect.signature(BACKENDS[name].__init__).parameters
    return {p for p in params if p not in ("self", "net", "device", "precision")}


PER_SIZE_BUILDS = {  # backends that build something for each input size, and what
    "onnxruntime": "exports an ONNX model",
    "openvino": "exports an ONNX model and compiles it",
    "tensorrt": "builds a TensorRT engine",
    "compile": "compiles the network",
}


def _innermost(backend: Backend) -> Backend:
    """The backend under the wrappers (levels, scaled inference, frame-parallel copies)."""
    for _ in range(16):
        inner = backend.__dict__.get("inner")
        if inner is None:
            break
        backend = inner
    return backend


def sizes_vary_hint(backend: Backend, live: bool = False) -> str | None:
    """What to say once when the pictures of a folder turn out to differ in size and ``backend``
    builds a model for each size (None for one that runs any size at once, as eager): what a new
    size costs (the longest build this run has timed, when it built any), that each is built
    once and cached, and that ``--backend eager`` runs pictures of any size at once. ``live``: for
    a camera that changed size (the engine says what the build took): what is built, and that
    eager would have gone on at once."""
    core = _innermost(backend)
    what = PER_SIZE_BUILDS.get(getattr(core, "name", ""))
    if what is None:
        return None
    chosen = "--backend auto chose " + core.name + ", which" if getattr(backend, "chosen_because", None) else core.name
    if live:
        return (f"{chosen} {what} for each new frame size (kept in the artefact cache: a size seen before is ready sooner); "
                "--backend eager goes on at once at any size (slower a frame), for cameras that change size")
    cache = getattr(core, "cache", None)
    builds = [u.seconds for u in getattr(cache, "history", []) if u.built]
    cost = f"{max(builds):.1f} s here" if builds else "seconds each" if core.name in ("onnxruntime", "openvino") else "a while each"
    return (f"{chosen} {what} for each new size ({cost}; kept in the artefact cache, so only the first run pays it); "
            "for folders of pictures of many sizes --backend eager starts each picture at once")
