"""`python -m train` rejects bad configs with the file and key, and exits 2."""
import yaml

from nirvision.config import to_dict
from train.__main__ import main

from .conftest import tiny_config


def _write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_unknown_and_wrong_keys_name_file_and_key(paired_dir, tmp_path, capsys):
    good = to_dict(tiny_config(paired_dir, tmp_path))
    bad = {**good, "pretrain": {**good["pretrain"], "epochz": 3}}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml" in err and "pretrain.epochz" in err and "unknown key" in err
    bad = {**good, "data": {**good["data"], "crop": "big"}}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    assert "data.crop" in capsys.readouterr().err
    bad = {k: v for k, v in good.items() if k != "translate"}
    assert main(["--config", _write(tmp_path, bad)]) == 2
    assert "translate" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    cfg = to_dict(tiny_config(tmp_path / "nowhere", tmp_path / "runs"))
    assert main(["--config", _write(tmp_path, cfg)]) == 2
    assert "folder not found" in capsys.readouterr().err
