import pytest

from tests.io.media import TINY_MODEL


@pytest.fixture
def tiny_model(tmp_path):
    """A YAML model small enough for CLI tests on a loaded 2-core CPU (one scale, width 4)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_MODEL)
    return path


