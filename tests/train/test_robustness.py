"""`python -m train` with bad paths, bad values, bad or stale states and Ctrl-C: one clear line,
exit 2 (130 for Ctrl-C), nothing written before the input is known good, nothing lost."""
import logging
import os
import shutil

import pytest
import torch
import yaml

from nirvision.config import to_dict
from nirvision.errors import InputError
from nirvision.models.checkpoint import save_checkpoint
from nirvision.models.registry import load_model_config
from train.__main__ import main
from train.data import TrainData
from train.dist import Context
from train.loop import STATE_FORMAT, StageRunner

from .conftest import tiny_config
from .test_stages import MODEL, run_stage


def _write(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _config(paired_dir, tmp_path, **top):
    return _write(tmp_path, {**to_dict(tiny_config(paired_dir, tmp_path / "runs")), **top})


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("train: error: "), err
    return lines[-1]


# --- item 1, 5: --export checked before training ---

def test_export_path_ending_in_md_is_refused_before_training(paired_dir, tmp_path, capsys):
    assert main(["--config", _config(paired_dir, tmp_path), "--export", str(tmp_path / "card.md")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "card.md" in line and "not ending in .md" in line and "card.pt" in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "card.md").exists()


def test_export_weights_refuses_a_card_path_equal_to_the_weights(paired_dir, tmp_path):
    from train.export import export_weights

    with pytest.raises(InputError, match="not ending in .md"):
        export_weights(tiny_config(paired_dir, tmp_path / "runs"), "c.yaml", tmp_path / "w.MD", {}, {})


@pytest.mark.parametrize("case", ["folder", "trailing_slash", "parent_is_file", "card_is_folder", "not_writable", "stage_translate"])
def test_bad_export_paths_are_refused_before_training(paired_dir, tmp_path, capsys, case):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "w.md").mkdir()
    export, extra, expect = {
        "folder": (str(tmp_path / "adir"), [], "is a folder; expected a file path for the weights"),
        "trailing_slash": (str(tmp_path / "new") + "/", [], "expected a file path for the weights"),
        "parent_is_file": (str(tmp_path / "afile" / "w.pt"), [], "afile is a file; expected a folder"),
        "card_is_folder": (str(tmp_path / "w.pt"), [], "w.md is a folder; expected a file path for the model card"),
        "not_writable": ("/proc/w.pt", [], "cannot create files in /proc"),
        "stage_translate": (str(tmp_path / "w.pt"), ["--stage", "translate"], "--stage translate does not run"),
    }[case]
    if case == "not_writable" and not os.path.isdir("/proc"):
        pytest.skip("no /proc")
    assert main(["--config", _config(paired_dir, tmp_path), "--export", export, *extra]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"train: error: --export {export}: ") and expect in line
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob("*.tmp"))


def test_save_state_leaves_no_tmp_behind_when_saving_fails(paired_dir, tmp_path, monkeypatch):
    cfg = tiny_config(paired_dir, tmp_path)
    runner = StageRunner(cfg, MODEL, TrainData(cfg.data, cfg.seed), Context(), "pretrain")

    def failing_save(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("train.loop.torch.save", failing_save)
    with pytest.raises(OSError):
        runner._save_state(1, [{}])
    assert list((tmp_path / "t" / "pretrain").iterdir()) == []


# --- item 6: --output ---

def test_output_that_is_a_file_or_holds_a_file_for_a_stage_folder_is_refused(paired_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["--config", _config(paired_dir, tmp_path), "--output", str(tmp_path / "afile")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "afile is a file; expected a folder" in line
    (tmp_path / "runs" / "t").mkdir(parents=True)
    (tmp_path / "runs" / "t" / "pretrain").write_text("x")
    assert main(["--config", _config(paired_dir, tmp_path), "--stage", "translate"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "t/pretrain is a file; expected the pretrain stage folder" in line
    assert not (tmp_path / "runs" / "t" / "train.log").exists()  # refused before anything ran


# --- items 8, 9, 11: values checked when the config loads ---

@pytest.mark.parametrize("change, expect", [
    ({"threads": -3}, "threads must be 0"),
    ({"seed": 10**20}, "seed must lie in"),
    ({"pool_size": -5}, "pool_size must be 0"),
    ({"sample_count": 0}, "sample_count must be 1 or more"),
    ({"name": "../../escape"}, "name must be a plain folder name"),
    ({"name": "a/b"}, "name must be a plain folder name"),
    ({"name": ".."}, "name must be a plain folder name"),
    ({"translate": {"iters_per_epoch": -1}}, "key 'translate': iters_per_epoch must be 0"),
    ({"finetune": {"betas": [0.5]}}, "key 'finetune': betas must be two numbers in [0, 1)"),
    ({"pretrain": {"betas": [0.5, 1.5]}}, "key 'pretrain': betas must be two numbers in [0, 1)"),
    ({"data": {"crop": 64}}, "data.crop: the pretrain stage's crop 64 is below 128"),
    ({"translate": {"crop": 32}}, "translate.crop: the translate stage's crop 32 is below 64"),
    ({"data": {"image_size": 64, "crop": 128}}, "data.image_size: 64 is below 128"),
])
def test_bad_values_are_refused_when_the_config_loads(paired_dir, tmp_path, capsys, change, expect):
    cfg = to_dict(tiny_config(paired_dir, tmp_path / "runs"))
    for key, value in change.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    assert main(["--config", _write(tmp_path, cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "c.yaml" in line and expect in line
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escape").exists()


def test_negative_threads_option_is_refused(paired_dir, tmp_path, capsys):
    assert main(["--config", _config(paired_dir, tmp_path), "--threads", "-3"]) == 2
    assert "--threads -3: expected 0" in _one_error_line(capsys.readouterr().err)


def test_size_minimums_are_the_smallest_sides_the_networks_train_at():
    from train.__main__ import size_minimums

    for name in ("lite", "paper"):
        model = load_model_config(name, require_training=True)
        mins = size_minimums(model)
        side = {"lite": {"translate": 64, "pretrain": 128, "finetune": 128, "validation": 128},
                "paper": {"translate": 128, "pretrain": 128, "finetune": 128, "validation": 128}}[name]
        assert mins == side
    model = load_model_config("lite", require_training=True)
    for role, spec in model.networks.items():  # each runs in training mode at its minimum and fails one step below
        net = spec.build().train()
        low = 2 * spec.config.multiple if spec.type == "mpfnet" else 24
        step = spec.config.multiple if spec.type == "mpfnet" else 2
        with torch.no_grad():
            net(torch.zeros(1, spec.config.in_channels, low, low))
            with pytest.raises(ValueError, match="more than 1 spatial element"):
                net(torch.zeros(1, spec.config.in_channels, low - step, low - step))


# --- item 30: data checked before the run folder exists; error lines without timestamps ---

def test_bad_data_leaves_no_run_folder(tmp_path, capsys):
    from .conftest import make_paired_folder

    data = make_paired_folder(tmp_path / "d", count=4)
    (data / "rgb" / "field_0000.png").unlink()
    assert main(["--config", _write(tmp_path, to_dict(tiny_config(data, tmp_path / "runs")))]) == 2
    assert "unpaired images" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_errors_after_logging_starts_are_one_line_without_timestamp(paired_dir, tmp_path, capsys):
    assert main(["--config", _config(paired_dir, tmp_path), "--stage", "finetune"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("train: error: stage finetune starts from the output of stage translate")
    log = (tmp_path / "runs" / "t" / "train.log").read_text()
    assert "data " in log and "train pairs" in log  # what was logged while the data loaded is in train.log too
    assert "ERROR train: stage finetune starts from" in log


# --- items 3, 10: bad last.pt, incomplete previous output ---

def _bad_states(path, tmp_path):
    good = {"format": STATE_FORMAT, "stage": "translate", "epoch": 1, "networks": {}, "history": []}
    torch.save(good, tmp_path / "other.pt")
    whole = (tmp_path / "other.pt").read_bytes()
    yield "truncated", lambda: path.write_bytes(whole[: len(whole) // 2]), "cannot be read as a training state"
    yield "empty", lambda: path.write_bytes(b""), "cannot be read as a training state (0 bytes"
    yield "text", lambda: path.write_text("hello\n"), "cannot be read as a training state"
    yield "output", lambda: save_checkpoint(path, MODEL, {"colorizer": MODEL.build("colorizer")}), "not a training state (it is a nirvision checkpoint"
    yield "other_stage", lambda: shutil.copy(tmp_path / "other.pt", path), "the training state of stage 'translate', expected one of stage 'pretrain'"
    yield "incomplete", lambda: torch.save({**good, "stage": "pretrain"}, path), "training state incomplete or does not fit"


def test_bad_last_pt_is_a_clear_error_suggesting_fresh(paired_dir, tmp_path, capsys):
    path = tmp_path / "runs" / "t" / "pretrain" / "last.pt"
    path.parent.mkdir(parents=True)
    for kind, make, expect in _bad_states(path, tmp_path):
        make()
        assert main(["--config", _config(paired_dir, tmp_path), "--stage", "pretrain"]) == 2, kind
        line = _one_error_line(capsys.readouterr().err)
        assert str(path) in line and expect in line and "--stage pretrain --fresh" in line, (kind, line)
        assert path.is_file()  # nothing lost


def test_previous_output_missing_networks_names_them(paired_dir, tmp_path, capsys):
    run = tmp_path / "runs" / "t"
    save_checkpoint(run / "translate" / "output.pt", MODEL, {r: MODEL.build(r) for r in ("nir_to_gray", "colorizer")})
    save_checkpoint(run / "pretrain" / "output.pt", MODEL, {"colorizer": MODEL.build("colorizer")})
    assert main(["--config", _config(paired_dir, tmp_path), "--stage", "finetune"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{run / 'translate' / 'output.pt'}: holds no weights for gray_to_nir, disc_gray, disc_nir (it has: nir_to_gray, colorizer)" in line


# --- item 2: a later stage notices a re-run earlier stage ---

def test_finetune_restarts_when_translate_output_changed(paired_dir, tmp_path, caplog):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    for name in ("translate", "pretrain", "finetune"):
        run_stage(cfg, name, data)
    fine = tmp_path / "t" / "finetune"
    first = torch.load(fine / "output.pt", weights_only=True)["networks"]["colorizer"]
    caplog.set_level(logging.INFO)
    # unchanged inputs: finetune resumes (it had finished) and hands on the same weights
    runner, _ = run_stage(cfg, "finetune", data)
    assert runner.start_epoch == 1 and "changed since" not in caplog.text
    # translate trained one epoch more: finetune starts afresh from the new translate output
    longer = tiny_config(paired_dir, tmp_path)
    longer.translate.epochs = 2
    run_stage(longer, "translate", data)
    caplog.clear()
    runner, _ = run_stage(longer, "finetune", data)
    assert runner.start_epoch == 0 and [h["epoch"] for h in runner.history] == [1]
    assert f"{tmp_path / 't' / 'translate' / 'output.pt'} changed since {fine / 'last.pt'} was started from it (stage translate ran again)" in caplog.text
    second = torch.load(fine / "output.pt", weights_only=True)["networks"]["colorizer"]
    assert any(not torch.equal(first[k], second[k]) for k in first)
    # a state from before the record existed resumes as before, with a warning
    state = torch.load(fine / "last.pt", weights_only=True)
    del state["inputs"], state["settings"]
    torch.save(state, fine / "last.pt")
    caplog.clear()
    runner, _ = run_stage(longer, "finetune", data)
    assert runner.start_epoch == 1
    assert "does not record which outputs of translate and pretrain it started from" in caplog.text
    assert "does not record the settings" in caplog.text


# --- item 4: resuming with changed settings says what changed ---

def test_resume_with_changed_settings_warns_listing_them(paired_dir, tmp_path, caplog):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    run_stage(cfg, "pretrain", data)
    caplog.set_level(logging.INFO)
    run_stage(tiny_config(paired_dir, tmp_path, epochs=2), "pretrain", data)  # more epochs: not a change worth a warning
    assert "settings changed" not in caplog.text
    link = tmp_path / "elsewhere"
    link.symlink_to(paired_dir)
    changed = tiny_config(link, tmp_path, epochs=2, lr=1e-3, batch_size=3)
    changed.seed = 4
    caplog.clear()
    runner, _ = run_stage(changed, "pretrain", data)
    assert runner.start_epoch == 2
    warning = [r.getMessage() for r in caplog.records if "settings changed" in r.getMessage()]
    assert len(warning) == 1
    for part in ("seed 3 -> 4", f"data.root {str(paired_dir)!r} -> {str(link)!r}", "pretrain.lr 0.0002 -> 0.001",
                 "pretrain.batch_size 2 -> 3", "--stage pretrain --fresh"):
        assert part in warning[0]
    assert "epochs" not in warning[0]


# --- item 7: Ctrl-C ---

def test_ctrl_c_is_one_line_exit_130_and_the_run_resumes(paired_dir, tmp_path, capsys, monkeypatch):
    cfg = to_dict(tiny_config(paired_dir, tmp_path / "runs", epochs=2))
    path = _write(tmp_path, cfg)
    real = TrainData.batches
    calls = []

    def batches(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # the second epoch
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(TrainData, "batches", batches)
    try:
        rc = main(["--config", path, "--stage", "pretrain"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() as a KeyboardInterrupt traceback")
    assert rc == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == "train: interrupted in stage pretrain; run the same command again to resume it after epoch 1"
    log = (tmp_path / "runs" / "t" / "train.log").read_text()
    assert "interrupted in stage pretrain" in log
    monkeypatch.setattr(TrainData, "batches", real)
    assert main(["--config", path, "--stage", "pretrain"]) == 0
    assert "pretrain: resumed from" in (tmp_path / "runs" / "t" / "train.log").read_text()
    assert torch.load(tmp_path / "runs" / "t" / "pretrain" / "last.pt", weights_only=True)["epoch"] == 2
