"""Export of the inference chain to ONNX for one input shape, cached on disk.

The chain pads its input to the network's multiple and crops back; traced with symbolic sizes
the TorchScript exporter records that crop wrongly (a 640-wide frame came back 384 wide), so we
export ``FixedShapeChain``: the same computation with the padding and crop fixed as constants
for the one shape. Each input shape gets its own ONNX file (the cache key holds the shape).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...models import NIRColorizerNet
from ...models.chain import padded_size
from ...models.inference import StemAvgPool, can_fuse, for_export, fused_predict, stem_to_image
from ..cache import ArtefactCache, ArtefactKey, gpu_name, weights_hash

log = logging.getLogger(__name__)

OPSET = 17
# Bumped whenever an exported graph changes for the same weights, so that cached files of an
# older graph are not reused; per kind of file (onnx: the float graph, which int8 models are
# quantized from; onnx-u8: the uint8 one). 2: the stem as a convolution
# (nirvision.models.inference); 3: the uint8 graph stays in the stem's layout between the networks;
# 4: the uint8 graph scales its input in fp32 and casts once (fp16 graphs rounded twice).
GRAPH_VERSIONS = {"onnx": 2, "onnx-int8": 2, "onnx-u8": 4}
INPUT_NAME = "nir"
OUTPUT_NAME = "rgb"


class FixedShapeChain(nn.Module):
    """``NIRColorizerNet`` for one (H, W): constant padding and crop, identical outputs."""

    def __init__(self, net: NIRColorizerNet, height: int, width: int):
        super().__init__()
        self.net = net
        self.height, self.width = height, width
        self.pad_h = padded_size(height, net.multiple) - height
        self.pad_w = padded_size(width, net.multiple) - width
        self.mode = "reflect" if self.pad_h < height and self.pad_w < width else "replicate"

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded to the network's multiple (constant amounts for this shape)."""
        if self.pad_h or self.pad_w:
            x = F.pad(x, (0, self.pad_w, 0, self.pad_h), mode=self.mode)
        return x

    def forward(self, nir: torch.Tensor) -> torch.Tensor:
        x = self.pad(nir)
        gray = self.net.nir_to_gray(x)[-1]
        rgb = self.net.colorizer(gray)[-1]
        if self.pad_h or self.pad_w:
            rgb = rgb[:, :, : self.height, : self.width]
        return rgb


def to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8, rounded to nearest, as ``nirvision.runtime.frames.from_model_output``."""
    return ((rgb.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


class Uint8Frames(nn.Module):
    """A fixed-shape chain that takes the engine's uint8 frames (N, H, W) and returns uint8 RGB
    (N, H, W, 3): the conversions of ``nirvision.runtime.frames`` in the graph, where the
    runtime fuses and threads them (about 2 ms a frame less at 640x480 on 2 CPU threads) and
    a GPU provider moves a quarter of the bytes. Where the two networks share a stem, the
    graph stays in the stem's layout from the translator's output to the uint8 colours
    (``nirvision.models.inference.fused_predict``); the values are the same."""

    def __init__(self, chain: FixedShapeChain, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.chain, self.dtype = chain, dtype
        net = chain.net
        self.fused = can_fuse(net.nir_to_gray, net.colorizer)
        if self.fused:
            self.pool = StemAvgPool(1, net.colorizer.config.stem)

    def scale(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W) -> (N, 1, H, W) in [-1, 1] at the graph's dtype: scaled in fp32 and cast
        once, as ``to_model_input`` and the CUDA frame path do (in fp16 the scaling itself would
        round twice, and some inputs would come out one fp16 step off)."""
        return (frames.unsqueeze(1).to(torch.float32) * (2.0 / 255.0) - 1.0).to(self.dtype)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.scale(frames)
        if not self.fused:
            return to_uint8(self.chain(x)).permute(0, 2, 3, 1)
        c = self.chain
        p = fused_predict(c.net.nir_to_gray, c.net.colorizer, c.pad(x), self.pool)
        rgb = stem_to_image(to_uint8(p), c.net.colorizer.config.stem)
        return rgb[:, : c.height, : c.width]


def check_shape(shape: tuple[int, ...], what: str) -> tuple[int, int, int, int]:
    if len(shape) != 4 or shape[1] != 1 or min(shape) < 1:
        raise ValueError(f"{what}: expected an input of shape (N, 1, H, W), got {tuple(shape)}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def export_onnx(net: NIRColorizerNet, shape: tuple[int, ...], path: str | Path, dtype: torch.dtype = torch.float32, uint8_io: bool = False) -> Path:
    """Write the chain for input ``shape`` (N, 1, H, W) as ONNX (opset 17) at ``path``; with
    ``uint8_io`` the graph takes uint8 frames (N, H, W) and returns uint8 RGB (N, H, W, 3)."""
    n, _, h, w = check_shape(shape, "ONNX export")
    # cast and traced on a copy (the caller's network stays as it is) with graph-friendly layers
    net = for_export(net).to("cpu")
    module = FixedShapeChain(net, h, w).to(dtype).eval()  # eval: the exporter restores the wrapper's mode onto net
    example = torch.zeros(n, 1, h, w, dtype=dtype)
    if uint8_io:
        module = Uint8Frames(module, dtype).eval()
        example = torch.zeros(n, h, w, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # the legacy exporter warns about itself and about InstanceNorm's training flag
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
        )
    log.info("exported ONNX for input %s (%s%s) to %s", tuple(shape), dtype, ", uint8 frames in and out" if uint8_io else "", path)
    return Path(path)


def onnx_key(net: NIRColorizerNet, shape: tuple[int, ...], precision: str, device: torch.device | str = "cpu", kind: str = "onnx", digest: str | None = None) -> ArtefactKey:
    """The cache key of the chain's ONNX file (``kind`` ``onnx``) or its int8 form (``onnx-int8``)."""
    return ArtefactKey(
        kind=kind, weights=digest or weights_hash(net), shape=tuple(int(s) for s in shape),
        precision=precision, gpu=gpu_name(device) if precision == "fp16" else "any", extra=f"opset{OPSET}-graph{GRAPH_VERSIONS.get(kind, 2)}",
    )


EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}  # the pip extra that brings each runtime with onnx


def import_onnx(backend: str):
    """The ``onnx`` package, which the export and the cache's validation need, or
    BackendUnavailable naming ``backend`` and the extra that installs it."""
    from .base import BackendUnavailable

    hint = f"pip install 'nirvision[{EXTRAS.get(backend, 'onnx')}]'"
    try:
        import onnx
    except ImportError:
        raise BackendUnavailable(f"{backend}: the onnx package is not installed, needed to export the model ({hint})") from None
    except Exception as exc:  # noqa: BLE001 - a broken install raises all sorts
        raise BackendUnavailable(f"{backend}: the onnx package failed to import ({type(exc).__name__}: {exc}); "
                                 f"it is needed to export the model ({hint})") from None
    return onnx


def validate_onnx(path: Path) -> None:
    """Raise unless ``path`` holds a well-formed ONNX model."""
    import onnx

    onnx.checker.check_model(str(path))


def cached_onnx(net: NIRColorizerNet, shape: tuple[int, ...], precision: str = "fp32", cache: ArtefactCache | None = None, device: torch.device | str = "cpu", digest: str | None = None,
                uint8_io: bool = False) -> Path:
    """The chain's ONNX file for ``shape`` at ``precision`` (fp32 or fp16), built when missing
    (``uint8_io``: the ``Uint8Frames`` form, cached under its own kind)."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"ONNX export: precision {precision!r}; expected fp32 or fp16 (int8 comes from calibration)")
    cache = cache or ArtefactCache()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    key = onnx_key(net, shape, precision, device, kind="onnx-u8" if uint8_io else "onnx", digest=digest)
    return cache.get_or_build(key, ".onnx", lambda p: export_onnx(net, shape, p, dtype, uint8_io), validate_onnx)


def int8_model_key(net: NIRColorizerNet, shape: tuple[int, ...], digest: str | None = None) -> ArtefactKey:
    """Where the calibrated int8 model for ``net`` at input ``shape`` lives in the cache."""
    return onnx_key(net, shape, "int8", kind="onnx-int8", digest=digest)


def load_int8_model(net: NIRColorizerNet, shape: tuple[int, ...], cache: ArtefactCache, digest: str | None = None, backend: str = "onnxruntime") -> Path:
    """The calibrated int8 ONNX model for one frame of ``shape``'s size (calibrate writes
    (1, 1, H, W) models; a batch runs them frame by frame), or BackendUnavailable naming the
    calibration command."""
    from .base import BackendUnavailable

    n, _, h, w = check_shape(shape, f"{backend} int8 model")
    if n != 1:
        raise ValueError(f"{backend} int8: the calibrated model takes one frame, (1, 1, {h}, {w}); got input {tuple(shape)}")
    digest = digest or weights_hash(net)
    found = cache.lookup(int8_model_key(net, shape, digest), ".onnx", validate_onnx)
    if found is None:
        raise BackendUnavailable(
            f"{backend} int8: no calibrated int8 model for these weights at {w}x{h} in {cache.root}; "
            f"create it with `python -m calibrate --frames DIR --sizes {w}x{h} {_calibrate_weights(digest)}` (and the same --cache), "
            f"or pass int8_model=PATH (Python)"
        )
    return found


def _calibrate_weights(digest: str) -> str:
    """The calibrate options that give the weights of ``digest``: ``--weights`` with the bundled
    file when they are the bundled weights."""
    from ...resources import default_weights_path

    bundled = default_weights_path()
    try:
        from ...api import load_chain

        if bundled.is_file() and weights_hash(load_chain(bundled)[0]) == digest:
            return f"--weights {bundled}"
    except Exception as exc:  # noqa: BLE001 - only a hint in an error message
        log.debug("could not compare with the bundled weights: %s", exc)
    return "--weights CHECKPOINT (the one this run uses; without it calibrate takes the bundled weights)"


def onnx_model(net: NIRColorizerNet, shape: tuple[int, ...], precision: str, cache: ArtefactCache, digest: str, backend: str,
               int8_model: Path | None = None, uint8_io: bool = False, device: torch.device | str = "cpu") -> Path:
    """The ONNX file a runtime (ONNX Runtime, OpenVINO) loads for ``shape`` at ``precision``:
    the calibrated int8 model (``int8_model`` or the cache's; float in and out), else the
    cached export (uint8 frames in and out with ``uint8_io``)."""
    if precision == "int8":
        if int8_model is not None:
            from .base import BackendUnavailable

            if not Path(int8_model).is_file():
                raise BackendUnavailable(f"{backend} int8: int8_model {int8_model} does not exist")
            return Path(int8_model)
        return load_int8_model(net, shape, cache, digest, backend)
    return cached_onnx(net, shape, precision, cache, device, digest, uint8_io=uint8_io)
