"""``nirvision --help``, ``nirvision info`` and the exit codes of the command line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nirvision.cli import main

BACKENDS = ("eager", "compile", "onnxruntime", "openvino", "tensorrt", "cuda")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "nirvision", *args], capture_output=True, text=True, timeout=120)


def test_info_lists_backends_with_reasons(capsys):
    import torch

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nirvision 0.1.0")
    for section in ("versions:", "devices:", "backends:", "bundled weights:"):
        assert section in out
    backends = out.split("\nbackends:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(backends) == len(BACKENDS)
    for name in BACKENDS:
        (line,) = [ln for ln in backends if ln.strip().startswith(name + " ")]
        verdict, reason = line.split(None, 1)[1].split(None, 1)
        assert verdict in ("yes", "no")
        assert len(reason) > 10, f"backend {name} has no reason: {line!r}"
    assert "torch" in out and "cpu:" in out
    versions = out.split("\nversions:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert any(ln.split() == ["torch", torch.__version__] for ln in versions)
    assert not any(ln.split()[-1] == "None" for ln in versions), "an absent package shows as 'not installed'"
    # what --levels brings frames to: the levels the bundled weights recorded
    from nirvision.api import load_chain
    from nirvision.runtime.levels import band_of

    band = band_of(load_chain()[2])
    assert (f"NIR levels of their {band.images} training images: 1st percentile {band.low[0]:.0f}-{band.low[1]:.0f}, "
            f"99th {band.high[0]:.0f}-{band.high[1]:.0f}") in out


def test_info_json_agrees_with_this_machine(capsys):
    import torch

    assert main(["info", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["backends"]) == set(BACKENDS)
    for st in rep["backends"].values():
        assert isinstance(st["usable"], bool) and st["detail"]
    assert rep["backends"]["eager"]["usable"] is True
    assert rep["backends"]["cuda"]["usable"] == torch.cuda.is_available()
    # what the defaults become here: the backend auto builds, the device and precision auto resolve to
    d = rep["defaults"]
    gpu = torch.cuda.is_available()
    usable_ov, usable_ort = rep["backends"]["openvino"]["usable"], rep["backends"]["onnxruntime"]["usable"]
    native_bf16 = usable_ov and "bf16 native" in rep["backends"]["openvino"]["detail"]
    assert d["device"] == (f"cuda:{torch.cuda.current_device()}" if gpu else "cpu")
    assert d["precision"] == ("fp16" if gpu else "bf16" if native_bf16 else "fp32")
    if not gpu:
        from nirvision.runtime.backends.auto import candidates

        order = candidates(torch.device("cpu"), d["precision"])  # openvino or onnxruntime first, by the CPU
        assert d["backend"] == next(name for name in order if rep["backends"][name]["usable"])
        if native_bf16:
            assert d["backend"] == "openvino"  # bf16 only runs there
        assert d["workers"] == (2 if (usable_ov or usable_ort) and torch.get_num_threads() >= 2 else 1)
    assert rep["versions"]["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert rep["backends"]["tensorrt"]["usable"] is False
        assert rep["backends"]["tensorrt"]["detail"].startswith("needs CUDA")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert "not installed" in rep["backends"]["onnxruntime"]["detail"]
    else:
        assert rep["backends"]["onnxruntime"]["usable"] is True
        assert "CPUExecutionProvider" in rep["backends"]["onnxruntime"]["detail"]


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert "usage: nirvision" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_help_and_exit_codes_as_a_process():
    helped = run_cli("--help")
    assert helped.returncode == 0
    assert "usage: nirvision" in helped.stdout and "info" in helped.stdout
    bare = run_cli()
    assert bare.returncode == 2
    assert "usage: nirvision" in bare.stdout


def test_console_script_runs_info():
    script = Path(sys.executable).with_name("nirvision")
    if not script.exists():
        pytest.skip("the nirvision console script is not installed next to this python")
    done = subprocess.run([str(script), "info"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "backends:" in done.stdout and "eager" in done.stdout


def test_info_says_what_the_defaults_become(capsys, monkeypatch):
    import nirvision.runtime.availability as availability

    assert main(["info"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("defaults here:")]
    assert len(line) == 1 and "--backend auto -> " in line[0] and "--precision auto -> " in line[0]

    def broken(*a, **k):
        raise RuntimeError("no backend at all")

    monkeypatch.setattr("nirvision.runtime.backends.create_backend", broken)
    d = availability.defaults()  # info still answers, with the reason
    assert d["backend"] is None and "no backend at all" in d["why"]


def test_help_and_usage_errors_do_not_load_torch_or_the_codecs():
    """``nirvision --help`` and a mistyped option answer at once: the parser imports neither
    PyTorch nor PyAV (seconds on a small machine); the command that runs imports them."""
    import subprocess
    import sys

    code = ("import sys; from nirvision.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'av', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
