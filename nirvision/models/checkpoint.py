"""Checkpoints: one file with the model config and the weights, loaded without executing code.

The file is a ``torch.save`` of plain containers and tensors, read back with
``torch.load(weights_only=True)``, so a hostile file cannot run code on load.
"""
from __future__ import annotations

import logging
import math
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from .registry import INFERENCE_ROLES, ModelConfig, parse_model_config

log = logging.getLogger(__name__)

FORMAT = "nirvision-checkpoint"
VERSION = 1
TRAIN_STATE_FORMAT = "nirvision-train-state"  # train/loop.py's last.pt (train is not part of the library)

# Training stages whose output.pt (and best.pt) hold an inference network that stage never
# trained: translate trains the translators only (its colorizer is the random init), pretrain
# the colorizer only, on gray images (its NIR-to-gray translator is the random init).
UNTRAINED_BY_STAGE = {"translate": ("colorizer",), "pretrain": ("nir_to_gray",)}


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


def quiet_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, without torch's warning about a pickle
    protocol other than its own (it is followed by the refusal or works; it asks the user to
    file an issue with torch, which is no help here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def _allowed_globals() -> set[str]:
    try:  # torch's own allow-list (private; the scan below then names every global not on it)
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals())
    except Exception:  # noqa: BLE001 - another torch: its tensor-rebuilding globals at least
        return {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}


# A legacy (non-zip) torch.save file is pickles one after another: the magic number, the
# protocol, system info, the object, its storage keys; raw tensor bytes follow, which are no pickle.
LEGACY_PICKLES = 5


def _pickle_globals(path: Path, limit: int = 1 << 26) -> list[str]:
    """``module.name`` of each global the pickles in ``path`` (a torch zip file, a legacy torch
    file or a bare pickle) refer to, in order, read with ``pickletools`` (which runs nothing);
    best effort."""
    import io
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            with open(path, "rb") as f:
                data = f.read(limit)
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    stream = io.BytesIO(data)
    try:
        for _ in range(LEGACY_PICKLES):  # a legacy file's object (and any code in it) is its 4th pickle
            if stream.tell() >= len(data):
                break
            recent: list[str | None] = []  # what the last opcodes pushed (None: not a string)
            memo: dict[int, str | None] = {}
            for op, arg, _ in pickletools.genops(stream):  # reads up to this pickle's STOP
                if op.name == "GLOBAL" and isinstance(arg, str):
                    found.append(arg.replace(" ", ".", 1))
                elif op.name == "STACK_GLOBAL" and len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                    found.append(f"{recent[-2]}.{recent[-1]}")
                elif "UNICODE" in op.name or "STRING" in op.name:
                    recent.append(arg if isinstance(arg, str) else None)
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    recent.append(memo.get(arg))
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = recent[-1] if recent else None
    except Exception:  # noqa: BLE001 - a damaged pickle, or bytes after a bare one: what was found so far
        pass
    # pickle protocols 0-2 (torch.save's default) spell the builtins module as Python 2 did
    return [("builtins." + g[len("__builtin__."):]) if g.startswith("__builtin__.") else g for g in found]


def refused_global(path: str | Path, exc: BaseException) -> str | None:
    """The global (``posix.system``, ``builtins.exec``, a class) for which ``torch.load(weights_only=True)``
    refused ``path`` with ``exc``: loading it would have run code. None where the file is
    refused for another reason (truncated, damaged, not a pickle)."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    allowed = _allowed_globals()
    foreign = [g for g in _pickle_globals(Path(path)) if g not in allowed]
    if foreign:
        return foreign[0]
    m = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
    return m.group(1) if m else None


def read_checkpoint(path: str | Path) -> dict:
    """Read and check the envelope of a checkpoint file; tensors stay on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found")
    try:
        payload = quiet_load(path)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        text = str(exc)
        code = refused_global(path, exc)
        if code:  # weights_only met a function or class: unpickling it would run code
            raise CheckpointError(f"checkpoint {path}: refused: the file asks to run code ({code}); nirvision loads weights only "
                                  "(expected a file written by nirvision: training's --export, or the bundled nirvision/weights/mpfnet-lite.pt)") from None
        # torch's weights-only message starts with advice on weights_only=False, which is not ours to give
        reason = type(exc).__name__ if isinstance(exc, pickle.UnpicklingError) or not text else f"{type(exc).__name__}: {text.splitlines()[0]}"
        raise CheckpointError(f"checkpoint {path}: cannot be read ({path.stat().st_size} bytes; truncated, damaged or not a checkpoint: {reason}); "
                              "expected a file written by nirvision (training's --export, or the bundled nirvision/weights/mpfnet-lite.pt)") from None
    if isinstance(payload, dict) and payload.get("format") == TRAIN_STATE_FORMAT:
        stage, epoch = payload.get("stage"), payload.get("epoch")
        raise CheckpointError(f"checkpoint {path}: a training state (the last.pt of stage {stage}, after epoch {epoch}), not inference "
                              f"weights; expected a stage's output.pt (for colorizing, the finetune's: {path.parent.parent / 'finetune' / 'output.pt'}) "
                              "or the weights `python -m train --export` writes")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a nirvision checkpoint (expected a file written by nirvision's save_checkpoint)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {payload.get('version')!r}, this nirvision reads version {VERSION}")
    return payload


def checkpoint_config(payload: dict, path: str | Path = "") -> ModelConfig:
    return parse_model_config(payload["model_config"], source=f"checkpoint {path} (model_config)")


def model_mismatch(stored: ModelConfig, target: ModelConfig, roles: Iterable[str] | None = None) -> str | None:
    """Where the networks of ``roles`` (default: every role both have) differ in size between a
    checkpoint's ``stored`` config and the ``target`` one: ``holds model 'lite' (nir_to_gray:
    width 4, depth 1, ...), the config asks for 'paper' (nir_to_gray: width 32, depth 4, ...)``,
    the cause that a tensor-by-tensor diff of hundreds of names would hide. None where they agree."""
    for role in roles if roles is not None else list(target.networks):
        a, b = stored.networks.get(role), target.networks.get(role)
        if a is None or b is None:
            continue
        da, db = a.to_dict(), b.to_dict()
        keys = [k for k in dict.fromkeys([*db, *da]) if da.get(k) != db.get(k)]
        if keys:
            def sizes(d: dict) -> str:
                return ", ".join(f"{k} {d.get(k)}" for k in keys[:4]) + (", ..." if len(keys) > 4 else "")

            return (f"holds model {stored.name!r} ({role}: {sizes(da)}), the config asks for {target.name!r} "
                    f"({role}: {sizes(db)})")
    return None


def misfit(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """Which tensors of ``state`` do not fit a module's state dict ``own`` (missing, extra, of
    another shape), named with their shapes; None where all fit."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    parts = []
    for label, items in (("missing from checkpoint", missing), ("not in model", unexpected), ("shape differs", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) or None


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` strictly; on mismatch say which tensors differ and how."""
    why = misfit(module.state_dict(), state)
    if why:
        raise CheckpointError(f"{what} does not fit the model: {why}")
    module.load_state_dict(state, strict=True)


def stored_sizes(kind: str, state: Mapping[str, torch.Tensor], config: Any) -> dict[str, tuple[int, str]]:
    """The sizes of a network of type ``kind`` that its tensors in ``state`` tell (the config
    keys that make it large: width, depth, ...): key -> (value, the tensors that tell it)."""
    def shape(name: str, ndim: int) -> tuple[int, ...] | None:
        t = state.get(name)
        return tuple(t.shape) if isinstance(t, torch.Tensor) and t.ndim == ndim else None

    def indices(prefix: str) -> list[int]:
        """The N of the tensors named ``prefix.N. ...``, in order."""
        return sorted({int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"\.(\d{1,9})\.", k))})

    def told(prefix: str, found: list[int]) -> str:
        return f"{prefix}.{{{','.join(map(str, found))}}}" if len(found) <= 8 else f"{len(found)} {prefix}.N"

    found = {}
    if kind == "mpfnet":  # heads.S: the scales' first 3x3 convs, from in_channels*stem**2 to width
        heads, encoders = indices("heads"), indices("febs.0.encoders")
        if heads:
            found["scales"] = (len(heads), told("heads", heads))
        head = shape("heads.0.weight", 4)
        if head:
            found["width"] = (head[0], f"heads.0.weight {head}")
            stem = math.isqrt(head[1] // config.in_channels)
            if stem * stem * config.in_channels == head[1]:
                found["stem"] = (stem, f"heads.0.weight {head}")
        if encoders:  # one encoder step per UNet level
            found["depth"] = (len(encoders), told("febs.0.encoders", encoders))
    elif kind == "patchgan":  # net.I: the 4x4 convs (layers + 2 of them) and their norms
        first = shape("net.0.weight", 4)
        if first:
            found["width"] = (first[0], f"net.0.weight {first}")
        convs = [i for i in indices("net") if shape(f"net.{i}.weight", 4)]
        if len(convs) > 2:
            found["layers"] = (len(convs) - 2, "4x4 convs " + told("net", convs))
    return found


def check_fits(config: ModelConfig, role: str, state: Any, what: str) -> None:
    """Refuse ``state`` (a network's tensors) for ``role`` of ``config`` before the network is
    built: a model config that asks for another size than its tensors (a damaged or edited
    file; one that would take all memory) is named by key, then any other misfit by tensor,
    from a network built on the 'meta' device, which holds no memory."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what}: expected a mapping of tensor names to tensors, got {type(state).__name__}")
    odd = next(((k, v) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
    if odd:
        raise CheckpointError(f"{what}: expected a mapping of tensor names to tensors, got {odd[0]!r}: {type(odd[1]).__name__}")
    spec = config.networks[role]
    for key, (value, where) in stored_sizes(spec.type, state, spec.config).items():
        if getattr(spec.config, key) != value:
            raise CheckpointError(f"{what}: model config key '{role}.{key}' is {getattr(spec.config, key)}, its tensors were saved with "
                                  f"{value} ({where}); expected the model config they were saved with")
    with torch.device("meta"):
        skeleton = config.build(role)
    why = misfit(skeleton.state_dict(), state)
    if why:
        raise CheckpointError(f"{what} does not fit the model: {why}")


def load_networks(path: str | Path, roles=INFERENCE_ROLES, config: ModelConfig | None = None) -> tuple[ModelConfig, dict[str, nn.Module], dict]:
    """Build the networks of ``roles`` from the checkpoint (or from ``config``) and load them.

    A ``config`` of another model size than the checkpoint's is refused naming both sizes; one
    that does not fit the stored tensors, before any network is built (``check_fits``). A
    training stage's output whose ``roles`` include a network that stage did not train (the
    colorizer of translate's output, the translator of pretrain's) loads with a warning: it is a
    step of training, not weights to colorize with."""
    payload = read_checkpoint(path)
    stored = checkpoint_config(payload, path)
    if config is not None:
        mismatch = model_mismatch(stored, config, [r for r in roles if r in payload["networks"]])
        if mismatch:
            raise CheckpointError(f"checkpoint {path} does not fit the model: it {mismatch}; expected weights of that model, "
                                  f"or no model config (the checkpoint's own, {stored.name!r}, is then used)")
    config = config or stored
    meta = payload.get("meta", {})
    for role in roles:  # every network checked before any is built: a bad one takes no memory or time
        if role not in config.networks:
            raise CheckpointError(f"checkpoint {path}: model config has no network '{role}'")
        if role not in payload["networks"]:
            raise CheckpointError(f"checkpoint {path}: holds no weights for '{role}' (it has: {', '.join(payload['networks'])})")
        check_fits(config, role, payload["networks"][role], f"checkpoint {path}, network '{role}'")
    nets = {}
    for role in roles:
        net = config.build(role)
        load_into(net, payload["networks"][role], f"checkpoint {path}, network '{role}'")
        nets[role] = net
    stage = meta.get("stage") if isinstance(meta, dict) else None
    untrained = [r for r in roles if r in UNTRAINED_BY_STAGE.get(stage, ())]
    if untrained:
        log.warning("checkpoint %s is the output of training stage %s, which does not train its %s (left at the random init): "
                    "its colours mean nothing; expected the finetune stage's output.pt or the weights `python -m train --export` writes",
                    path, stage, " and ".join(untrained))
    return config, nets, meta
