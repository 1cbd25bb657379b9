"""Frame conversions between the uint8 images users have and the tensors the networks take."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import InputError, InputTypeError


def to_model_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 NIR (N, H, W) -> float32 tensor (N, 1, H, W) in [-1, 1]."""
    arr = np.ascontiguousarray(frames)
    t = torch.from_numpy(arr).to(torch.float32)
    return t.unsqueeze(1).mul_(2.0 / 255.0).sub_(1.0)


def from_model_output(rgb: torch.Tensor) -> np.ndarray:
    """float tensor (N, 3, H, W) in [-1, 1] -> uint8 RGB (N, H, W, 3), rounded to nearest."""
    t = rgb.detach().to("cpu", torch.float32)
    t = t.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def to_model_input_numpy(frames: np.ndarray) -> np.ndarray:
    """``to_model_input`` in numpy, bit for bit: float32 (N, 1, H, W) in [-1, 1].

    For backends whose copies run on worker threads (``parallel.FrameParallel``): a torch
    operation there starts an OpenMP team for that thread, whose idle threads spin and take the
    cores from everything else (measured on the Xeon: eager lite at 640x480 went from 34 to 71 ms
    a frame beside two ONNX Runtime int8 workers converting with torch)."""
    arr = np.ascontiguousarray(frames).astype(np.float32)[:, None]
    arr *= np.float32(2.0 / 255.0)
    arr -= np.float32(1.0)
    return arr


def from_model_output_numpy(rgb: np.ndarray) -> np.ndarray:
    """``from_model_output`` in numpy, bit for bit (rounding half to even, as torch does)."""
    t = np.asarray(rgb, dtype=np.float32) + np.float32(1.0)
    t *= np.float32(127.5)
    np.rint(t, out=t)
    np.clip(t, 0, 255, out=t)
    return np.ascontiguousarray(t.astype(np.uint8).transpose(0, 2, 3, 1))


WIDE_DEPTHS = (10, 12, 14, 16)  # the bit depths 16-bit NIR frames come in (Mono10 ... Mono16)
log = logging.getLogger(__name__)


def bits_for(top: int) -> int:
    """The fewest of ``WIDE_DEPTHS`` that hold the value ``top``."""
    return next(b for b in WIDE_DEPTHS if top < 1 << b)


def check_input_bits(bits, what: str = "input_bits") -> int | None:
    """``--input-bits``: None or "auto" (from the frames), else one of ``WIDE_DEPTHS``."""
    if bits is None or bits == "auto":
        return None
    try:
        value = int(bits)
    except (TypeError, ValueError):
        value = None
    if isinstance(bits, bool) or value not in WIDE_DEPTHS or str(value) != str(bits).strip():
        raise InputError(f"{what} {bits!r}: expected auto or one of {', '.join(map(str, WIDE_DEPTHS))}")
    return value


class SampleDepth:
    """How many of a 16-bit stream's bits hold the picture, and its frames brought to 8 bits.

    Cameras and their recording software store 10- and 12-bit sensor values (Mono10, Mono12)
    in the low bits of 16-bit PNG, TIFF or video frames: read as full 16-bit range, a 12-bit
    picture would keep 16 of its 4096 levels. With ``bits`` None (auto) the depth is the
    smallest of 10, 12, 14 and 16 bits that holds the largest value seen so far in the stream:
    it only grows, so a stream's frames keep one scale unless a brighter frame needs more bits
    (said once each time). 8-bit frames pass through unchanged."""

    def __init__(self, bits: int | str | None = None, name: str = "frames", quiet: bool = False):
        self.fixed = check_input_bits(bits)
        self.bits = self.fixed
        self.name = name
        self.quiet = quiet
        self._clipped = False  # said that a fixed depth clips

    def to_uint8(self, frame: np.ndarray, name: str | None = None) -> np.ndarray:
        """uint16 ``frame`` -> uint8 by the stream's depth (the top 8 of its significant bits)."""
        if self.fixed is not None:  # values above it clip; the first frame that has some says so
            limit = (1 << self.fixed) - 1
            if not self.quiet and not self._clipped and frame.size and (top := int(frame.max())) > limit:
                self._clipped = True
                log.warning("%s: 16-bit frames with values up to %d, above what %d bits hold (%d): those pixels are read as white; "
                            "--input-bits auto or a larger depth keeps them", name or self.name, top, self.fixed, limit)
            return (np.minimum(frame, limit) >> (self.fixed - 8)).astype(np.uint8)
        top = int(frame.max()) if frame.size else 0
        need = bits_for(top)
        if self.bits is None or need > self.bits:
            if not self.quiet and (need < 16 or self.bits is not None):
                before = "" if self.bits is None else f" (read as {self.bits}-bit before)"
                log.warning("%s: 16-bit frames with values up to %d: read as %d-bit%s; --input-bits (input_bits=) fixes the depth",
                            name or self.name, top, need, before)
            self.bits = need
        return (frame >> (self.bits - 8)).astype(np.uint8)  # every value fits: the depth holds the largest seen


def _shown(value) -> str:
    """A pixel value for a message: 3 digits, or as many as show it outside [0, 1] (1.0000001, not 1)."""
    short = f"{value:.3g}"
    return short if value == float(short) or not 0 <= float(short) <= 1 else np.format_float_positional(value, trim="-")


def to_nir(frame: np.ndarray, name: str = "frame", depth: SampleDepth | None = None) -> np.ndarray:
    """Any image (H x W, H x W x 1, H x W x 3 BGR/RGB, H x W x 4) -> one uint8 NIR channel.

    Colour input is reduced to one channel by averaging (NIR cameras that deliver three
    channels deliver the same signal in each); 16-bit input is brought to 8 bits by ``depth``
    (a stream's ``SampleDepth``; without one, by this frame's own largest value).
    """
    if not isinstance(frame, np.ndarray):
        raise InputTypeError(f"{name}: expected a numpy array, got {type(frame).__name__}")
    if frame.dtype not in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
        raise InputError(f"{name}: expected uint8, uint16 or float (16, 32 or 64-bit) pixels, got {frame.dtype}")
    # the shape first: a frame refused must not change the stream's depth; alpha is no picture
    if frame.ndim == 3 and frame.shape[2] in (1, 3, 4):
        frame = frame[:, :, 0] if frame.shape[2] == 1 else frame[:, :, :3]
    elif frame.ndim != 2:
        raise InputError(f"{name}: expected an H x W (or H x W x 1/3/4) image, got shape {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError(f"{name}: empty image of shape {frame.shape}")
    if frame.dtype == np.uint16:
        if frame.ndim == 3:  # one channel first, so that the depth is the picture's
            frame = np.round(frame.astype(np.float32).mean(axis=2)).astype(np.uint16)
        frame = (depth or SampleDepth(name=name, quiet=True)).to_uint8(frame, name)
    elif frame.dtype != np.uint8:
        if not np.isfinite(frame).all():
            bad = np.count_nonzero(~np.isfinite(frame))
            raise InputError(f"{name}: float frames must hold finite values in [0, 1], got {bad} NaN or infinite pixel(s)")
        if frame.min() < 0 or frame.max() > 1:
            raise InputError(f"{name}: float frames must lie in [0, 1], got [{_shown(frame.min())}, {_shown(frame.max())}]")
        if frame.dtype == np.float16:  # half precision (a GPU pipeline's output): scaled in float32, as float32 frames are
            frame = frame.astype(np.float32)
        frame = np.round(frame * 255).astype(np.uint8)
    if frame.ndim == 3:
        frame = np.round(frame.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return frame
