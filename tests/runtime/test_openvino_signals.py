"""OpenVINO leaves a freed alternate signal stack on the threads that used it; a signal taken
there then kills the process (SIGSEGV). The backend keeps each thread's stack as it was."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the signal stack is kept on Linux")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import gc, signal, sys, tempfile, threading, time
from tests.helpers import nir_frames, tiny_chain
from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.sigstack import current

before = current()
net, cache = tiny_chain(), tempfile.mkdtemp()
single = create_backend("openvino", net, "cpu", "fp32", cache_dir=cache, threads=1)
par = create_backend("openvino", net, "cpu", "fp32", cache_dir=cache, threads=2, workers="auto")
frames = nir_frames(6, 32, 48)
single.infer_uint8(frames)
par.infer_uint8(frames)
single.infer_uint8(nir_frames(2, 40, 56))  # a second size: built, kept
single.close()
par.close()
del single, par
gc.collect()
assert current() == before, (before, current())

def on_sigint(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGINT, on_sigint)
try:
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    time.sleep(5)
    sys.exit("the signal did not arrive")
except KeyboardInterrupt:
    print("interrupted cleanly")
"""


def test_a_signal_after_openvino_backends_are_freed_is_handled_not_a_crash():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # -11 (SIGSEGV) without the kept stack
    assert proc.stdout.strip().splitlines()[-1] == "interrupted cleanly"


def test_the_stack_is_put_back_after_a_block_that_changes_it():
    import ctypes

    from nirvision.runtime.backends import sigstack

    before = sigstack.current()
    buffer = ctypes.create_string_buffer(65536)
    with sigstack.kept_signal_stack():
        new = sigstack._Stack(ctypes.addressof(buffer), 0, len(buffer))
        assert sigstack._LIBC.sigaltstack(ctypes.byref(new), None) == 0
        assert sigstack.current()[0] == ctypes.addressof(buffer)
    assert sigstack.current() == before
