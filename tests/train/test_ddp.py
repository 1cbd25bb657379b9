"""A 2-process data-parallel run over gloo (torchrun), as multi-node training would run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from nirvision.config import to_dict
from nirvision.models import load_networks

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_gloo_run(paired_dir, tmp_path):
    cfg = tiny_config(paired_dir, tmp_path / "runs", epochs=2, iters=2, keep_best=True)  # rank 1 takes rank 0's best.pt
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", "--config", str(path), "--stage", "pretrain"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "runs" / "t" / "train.log").read_text()
    assert "world 2" in log
    assert (tmp_path / "runs" / "t" / "train.rank1.log").is_file()
    _, nets, meta = load_networks(tmp_path / "runs" / "t" / "pretrain" / "output.pt", roles=("colorizer",))
    assert meta["stage"] == "pretrain" and meta["epochs"] == 2
    history = json.loads((tmp_path / "runs" / "t" / "pretrain" / "history.json").read_text())
    psnrs = [r["val"]["psnr"] for r in history]
    assert meta["epoch"] == psnrs.index(max(psnrs)) + 1


def _torchrun(config: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", "--config", str(config), "--stage", "translate"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_resume_matches_the_uninterrupted_run(paired_dir, tmp_path):
    """Each process keeps its own CycleGAN image pools; last.pt holds all of them, so a resumed
    2-process translate stage ends in the same weights (and weight averages) as an uninterrupted one."""
    from nirvision.models.checkpoint import read_checkpoint

    def write(name: str, runs: Path, epochs: int) -> Path:
        cfg = tiny_config(paired_dir, runs, epochs=epochs, iters=1, decay_from=1.0, ema=0.9)  # the averages too
        cfg.pool_size = 2  # full after the first step: the pools' contents steer the discriminators
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(cfg)))
        return path

    _torchrun(write("whole", tmp_path / "a", 2))
    _torchrun(write("first", tmp_path / "b", 1))
    state = torch.load(tmp_path / "b" / "t" / "translate" / "last.pt", weights_only=True)
    assert len(state["pools_by_rank"]) == 2
    _torchrun(write("rest", tmp_path / "b", 2))
    assert "resumed from" in (tmp_path / "b" / "t" / "train.log").read_text()
    assert read_checkpoint(tmp_path / "b" / "t" / "translate" / "output.pt")["meta"]["ema"]["updates"] == 2
    a = read_checkpoint(tmp_path / "a" / "t" / "translate" / "output.pt")["networks"]
    b = read_checkpoint(tmp_path / "b" / "t" / "translate" / "output.pt")["networks"]
    assert set(a) == set(b) >= {"nir_to_gray", "gray_to_nir", "disc_gray", "disc_nir"}
    for role in a:
        for k in a[role]:
            assert torch.equal(a[role][k], b[role][k]), f"{role}.{k} differs after resume"
