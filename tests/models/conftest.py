"""Shared fixtures for the network tests: small configs so the suite stays fast on a CPU."""
from __future__ import annotations

import pytest
import torch

from nirvision.models import MPFNetConfig, load_model_config


@pytest.fixture(autouse=True)
def _seeded_single_thread():
    """Seed, and run on one thread: on a shared 2-core CPU, OpenMP threads spinning against
    other processes make two-thread convolutions tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lite():
    return load_model_config("lite", require_training=True)


@pytest.fixture(scope="session")
def paper():
    return load_model_config("paper", require_training=True)


def tiny_mpfnet_config(out_channels: int = 3, stem: int = 1, depth: int = 2, width: int = 4) -> MPFNetConfig:
    """A 3-scale MPFNet small enough to run in milliseconds."""
    return MPFNetConfig(in_channels=1, out_channels=out_channels, width=width, depth=depth, scales=3,
                        max_width_mult=4, ca_reduction=2, stem=stem)


@pytest.fixture(name="tiny_config")
def _tiny_config():
    return tiny_mpfnet_config
