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


def test_info_shows_the_artefact_cache(capsys, monkeypatch, tmp_path):
    from nirvision.runtime.cache import ArtefactCache, ArtefactKey

    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "cache"))
    ArtefactCache().get_or_build(ArtefactKey(kind="onnx-u8", weights="w", shape=(1, 1, 48, 64), precision="fp32"), ".onnx",
                                 lambda p: p.write_bytes(b"x" * 2000))
    assert main(["info"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("artefact cache:")]
    assert line.startswith(f"artefact cache: {tmp_path / 'cache'}, from $NIRVISION_CACHE (writable): 1 entries, 2.")
    assert "(onnx-u8 1)" in line and "`nirvision cache` lists and clears them" in line
    assert main(["info", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)["cache"]
    assert (c["folder"], c["writable"], c["entries"], c["kinds"]) == (str(tmp_path / "cache"), True, 1, {"onnx-u8": 1})


def test_the_cache_command_lists_and_clears(capsys, monkeypatch, tmp_path):
    import os
    import time

    from nirvision.runtime.cache import ArtefactCache, ArtefactKey

    cache = ArtefactCache(tmp_path / "c")
    key = ArtefactKey(kind="onnx-u8", weights="w", shape=(1, 1, 48, 64), precision="fp32")
    old = cache.get_or_build(key, ".onnx", lambda p: p.write_bytes(b"x" * 2000))
    new = cache.get_or_build(key.with_(shape=(1, 1, 120, 160)), ".onnx", lambda p: p.write_bytes(b"y" * 3000))
    t = time.time() - 10 * 86400
    for p in (old, old.with_name(old.name + ".json")):
        os.utime(p, (t, t))
    assert main(["cache", "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"artefact cache {tmp_path / 'c'} (writable): 2 entries, ")
    rows = [ln.split() for ln in out[2:]]
    assert [(r[0], r[1], r[2], r[-1]) for r in rows] == [("onnx-u8", "64x48", "fp32", str(old)), ("onnx-u8", "160x120", "fp32", str(new))]
    assert main(["cache", "clear", "--older-than", "7", "--cache", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 entry (2.")
    assert not old.exists() and new.exists()
    assert main(["cache", "list", "--older-than", "7", "--cache", str(tmp_path / "c")]) == 2
    assert "--older-than: only with `nirvision cache clear`" in capsys.readouterr().err
    assert main(["cache", "clear", "--older-than", "-1", "--cache", str(tmp_path / "c")]) == 2
    assert main(["cache", "clear", "--cache", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.startswith("removed 1 entry") and not new.exists()


def test_verbose_and_debug_are_taken_after_the_command_too(capsys, monkeypatch, tmp_path):
    import logging

    levels = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: levels.append(kw["level"]))
    folder = ["--cache", str(tmp_path / "c")]
    assert main(["cache", *folder, "-v"]) == 0
    assert main(["-v", "cache", *folder, "-v"]) == 0  # both count: -vv
    assert main(["cache", *folder, "-vv"]) == 0
    assert main(["cache", *folder]) == 0
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG, logging.WARNING]
    # the report's case: after a command's positional source and outputs, and no key of --config files
    from nirvision.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["colorize", "night.mp4", "-o", "out.mp4", "-v", "--debug"])
    assert (args.source, args.output, args.verbose_after, args.debug_after) == (["night.mp4"], ["out.mp4"], 1, True)
    assert not {"verbose", "debug"} & {a.dest for a in parser.commands["colorize"]._actions}
    capsys.readouterr()
    # --debug after the command shows the traceback; an input error still exits 2, as without --debug
    assert main(["cache", "list", "--older-than", "3", *folder, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "InputError" in err
    assert err.rstrip().endswith("nirvision cache: error: --older-than: only with `nirvision cache clear`")
    assert main(["--debug", "cache", "list", "--older-than", "3", *folder]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["cache", "list", "--older-than", "3", *folder]) == 2
    assert "Traceback" not in capsys.readouterr().err  # one line without it


def test_debug_keeps_the_exit_code_of_a_failure(capsys, monkeypatch):
    import nirvision.cli.info as info

    def broken(args):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(info, "run", broken)
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    for argv in (["info", "--debug"], ["info"]):
        parser_run = main(argv)
        err = capsys.readouterr().err
        assert parser_run == 1 and "nirvision info: failed: RuntimeError: the disk is on fire" in err
        assert ("Traceback" in err) == ("--debug" in argv)
