"""Ctrl-C in the first seconds of a command (its parser built, torch imported) ends it as a
Ctrl-C during it does: one line, exit 130, and ``--stats-json`` saying ``stopped_by: SIGINT``.

The command runs as the ``nirvision`` console script does, with an import hook that holds the
import of a module until the test has sent SIGINT, so the signal surely lands inside it."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

# The console script's ``from nirvision.cli import main; sys.exit(main())``, with SIGINT raising
# KeyboardInterrupt (as at a terminal; a test runner may start its children with SIGINT ignored)
# and the import of sys.argv[1] held: the file sys.argv[2] says the hold began.
BOOT = """
import importlib.abc, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
held, ready = sys.argv[1], sys.argv[2]

class Hold(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == held:
            sys.meta_path.remove(self)
            open(ready, "w").close()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the SIGINT ends this wait, inside the import
                time.sleep(0.01)
        return None

sys.meta_path.insert(0, Hold())
sys.argv = ["nirvision", *sys.argv[3:]]
from nirvision.cli import main
sys.exit(main())
"""


def interrupted(tmp_path, held: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``nirvision ARGS`` in ``tmp_path``, SIGINT it while it imports ``held``."""
    ready = tmp_path / "holding"
    proc = subprocess.Popen([sys.executable, "-c", BOOT, held, str(ready), *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                pytest.fail(f"the import of {held} was never held (exit {proc.returncode}): {err[-2000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_while_torch_imports_exits_130_and_writes_the_stats(tmp_path):
    run = interrupted(tmp_path, "torch", "colorize", "synthetic:64x64@5:3", "-o", "out.mp4", "--no-progress", "--stats-json", "stats.json")
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["nirvision colorize: interrupted"]
    assert json.loads((tmp_path / "stats.json").read_text()) == {"source": "synthetic:64x64@5:3", "frames_out": 0, "stopped_by": "SIGINT"}
    assert not (tmp_path / "out.mp4").exists()


def test_ctrl_c_while_the_parser_is_built_exits_130_and_writes_the_stats(tmp_path):
    run = interrupted(tmp_path, "nirvision.cli.colorize", "colorize", "synthetic:64x64@5:3", "-o", "out.mp4", "--stats-json", "stats.json")
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["nirvision colorize: interrupted"]
    assert json.loads((tmp_path / "stats.json").read_text())["stopped_by"] == "SIGINT"


def test_ctrl_c_early_with_options_from_a_config_file(tmp_path):
    (tmp_path / "run.yaml").write_text("source: synthetic:64x64@5:3\noutput: out.mp4\nstats-json: from-config.json\n")
    run = interrupted(tmp_path, "torch", "colorize", "--config", "run.yaml")
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["nirvision colorize: interrupted"]
    assert json.loads((tmp_path / "from-config.json").read_text())["stopped_by"] == "SIGINT"


def test_ctrl_c_early_in_bad_usage_says_only_that_it_was_interrupted(tmp_path):
    run = interrupted(tmp_path, "nirvision.cli.colorize", "colorize", "--no-such-option")
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["nirvision: interrupted"]


def test_ctrl_c_early_leaves_a_stats_file_that_is_a_source_alone(tmp_path):
    (tmp_path / "in.png").write_bytes(b"not replaced")
    run = interrupted(tmp_path, "torch", "colorize", "in.png", "-o", "out.mp4", "--stats-json", "in.png")
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["nirvision colorize: interrupted"]
    assert (tmp_path / "in.png").read_bytes() == b"not replaced"


def test_importing_the_command_imports_nothing_heavy():
    """The console script imports ``nirvision.cli`` before ``main`` can catch a Ctrl-C: that
    import is kept to the standard library."""
    code = "import sys, nirvision.cli; print(sorted(m for m in sys.modules if m.startswith(('nirvision.', 'numpy', 'torch', 'cv2', 'yaml'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['nirvision.cli']"
