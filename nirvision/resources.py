"""Where the bundled model configs and weights live, installed or in a checkout."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .config import ConfigError

_REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = "mpfnet-lite.pt"


def _configs_root() -> Path:
    try:
        root = Path(str(resources.files("nirvision.configs")))
        if root.is_dir():
            return root
    except ModuleNotFoundError:
        pass
    return _REPO_CONFIGS


def model_config_path(name: str) -> Path:
    """``configs/models/NAME.yaml`` as installed with the package."""
    path = _configs_root() / "models" / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (_configs_root() / "models").glob("*.yaml"))
        raise ConfigError(name, "", f"no bundled model config of that name; expected one of: {', '.join(names)} or a path to a YAML file")
    return path


def config_path(*parts: str) -> Path:
    return _configs_root().joinpath(*parts)


def default_weights_path() -> Path:
    """The bundled checkpoint trained by the project's lite schedule (see its model card)."""
    return _WEIGHTS / DEFAULT_WEIGHTS
