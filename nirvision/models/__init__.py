"""MPFNet and its parts (paper section II), built from YAML through ``registry``."""
from .attention import RCAB, CoordinateAttention
from .chain import NIRColorizerNet, pad_to_multiple
from .checkpoint import CheckpointError, load_networks, read_checkpoint, save_checkpoint
from .discriminators import PatchDiscriminator, PatchGANConfig
from .feb import FEB
from .mpfnet import MPFNet, MPFNetConfig, image_pyramid
from .registry import NETWORKS, ModelConfig, load_model_config, parse_model_config
from .sccm import SCCM

__all__ = [
    "CheckpointError", "CoordinateAttention", "FEB", "MPFNet", "MPFNetConfig", "ModelConfig",
    "NETWORKS", "NIRColorizerNet", "PatchDiscriminator", "PatchGANConfig", "RCAB", "SCCM",
    "image_pyramid", "load_model_config", "load_networks", "pad_to_multiple", "parse_model_config",
    "read_checkpoint", "save_checkpoint",
]
