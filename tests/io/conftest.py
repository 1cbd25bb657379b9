import pytest

from tests.io.media import TINY_MODEL


@pytest.fixture
def tiny_model(tmp_path):
    """A YAML model small enough for CLI tests on a loaded 2-core CPU (one scale, width 4)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_MODEL)
    return path


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch thread: on a shared 2-core CPU, spinning OpenMP threads slow convolutions badly."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
