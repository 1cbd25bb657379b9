"""A 2-process data-parallel run over gloo (torchrun), as multi-node training would run."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

from nirvision.config import to_dict
from nirvision.models import load_networks

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_gloo_run(paired_dir, tmp_path):
    cfg = tiny_config(paired_dir, tmp_path / "runs", epochs=1, iters=2)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "train", "--config", str(path), "--stage", "pretrain"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "runs" / "t" / "train.log").read_text()
    assert "world 2" in log
    assert (tmp_path / "runs" / "t" / "train.rank1.log").is_file()
    _, nets, meta = load_networks(tmp_path / "runs" / "t" / "pretrain" / "output.pt", roles=("colorizer",))
    assert meta["stage"] == "pretrain" and meta["epochs"] == 1
