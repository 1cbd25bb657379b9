import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch thread per test: on a shared 2-core CPU, spinning OpenMP threads slow
    two-thread runs badly, and results then do not depend on the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _artefact_cache(tmp_path_factory):
    """Exported models go to a per-session folder, not the user's ~/.cache/nirvision (the
    CLI's default backend, auto, exports ONNX files there)."""
    import os

    old = os.environ.get("NIRVISION_CACHE")
    os.environ["NIRVISION_CACHE"] = str(tmp_path_factory.mktemp("nirvision-cache"))
    yield
    if old is None:
        os.environ.pop("NIRVISION_CACHE", None)
    else:
        os.environ["NIRVISION_CACHE"] = old
