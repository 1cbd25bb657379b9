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
