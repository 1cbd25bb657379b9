"""``-o null:`` (or ``/dev/null``): a whole run, frames colorized and counted, nothing written."""
import json
import os
import stat

import pytest

from nirvision.cli import main
from nirvision.io.specs import NullSink, check_distinct_outputs, is_null_spec
from nirvision.errors import InputError
from tests.io.media import make_clip


@pytest.mark.parametrize("spec", ["null:", "null", os.devnull])
def test_null_output_runs_the_whole_engine_and_writes_nothing(tmp_path, tiny_model, capsys, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    code = main(["colorize", "synthetic:64x48@25:12", "-o", spec, "--model", str(tiny_model), "--threads", "1", "--no-progress",
                 "--stats-json", "s.json"])
    err = capsys.readouterr().err
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_in"] == stats["frames_out"] == 12 and stats["dropped"] == 0
    assert "12 frames in" in err and "-> null: (frames discarded)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "tiny.yaml"]  # no folder named null or null:
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device: nothing was written in its place


def test_null_is_one_output_whatever_its_spelling_and_no_batch_target(tmp_path, tiny_model, capsys):
    assert is_null_spec("null:") and is_null_spec(os.devnull) and not is_null_spec("null.mp4") and not is_null_spec(tmp_path / "null")
    with pytest.raises(InputError, match="given twice"):
        check_distinct_outputs(["null:", os.devnull])
    sink = NullSink()
    sink.write(None, None)
    assert sink.frames == 1
    for name in ("a.mp4", "b.mp4"):
        make_clip(tmp_path / name, [0, 40])
    code = main(["colorize", str(tmp_path), "-o", "null:", "--model", str(tiny_model), "--no-progress"])
    assert code == 2 and "a batch of videos (2) needs one output folder" in capsys.readouterr().err
