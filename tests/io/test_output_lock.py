"""One writer per output: a second run naming an output another run writes is told so (a single
run exits 2; a batch skips that video and goes on), and a killed run leaves no claim behind."""
import json
import os
import signal
import subprocess
from fractions import Fraction
import sys

import pytest

from nirvision.cli import main
from nirvision.io import open_sink
from nirvision.io.base import SourceInfo
from nirvision.io.output_lock import OutputBusy, OutputClaim, lock_path
from tests.io.media import make_clip, read_video

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="outputs are claimed with flock")

HOLDER = """
import sys, time
from nirvision.io.output_lock import OutputClaim
claim = OutputClaim(sys.argv[1], folder=sys.argv[2] == "folder")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder():
    """Another process claiming an output (as another nirvision run does), until killed."""
    procs = []

    def start(path, folder=False):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "folder" if folder else "file"], stdout=subprocess.PIPE,
                                text=True, cwd=os.getcwd())
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_claim_is_exclusive_says_who_holds_it_and_is_released(tmp_path):
    out = tmp_path / "night.mp4"
    first = OutputClaim(out)
    assert first.held and lock_path(out) == tmp_path / ".night.mp4.nirvision-lock"
    assert int(lock_path(out).read_text().split()[0]) == os.getpid()
    with pytest.raises(OutputBusy, match=rf"output {out}: another nirvision run \(process {os.getpid()}\) is writing it") as busy:
        OutputClaim(out)
    assert busy.value.pid == os.getpid()
    first.release()
    assert not lock_path(out).exists()  # nothing left beside the output
    with OutputClaim(out) as again:
        assert again.held
    first.release()  # twice: harmless


def test_a_killed_run_leaves_no_claim(tmp_path, holder):
    out = tmp_path / "night.mp4"
    proc = holder(out)
    with pytest.raises(OutputBusy, match=rf"process {proc.pid}"):
        OutputClaim(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(out).exists()  # its file stays, but not its lock
    with OutputClaim(out) as claim:
        assert claim.held and int(lock_path(out).read_text().split()[0]) == os.getpid()


def test_sinks_claim_their_outputs_until_closed(tmp_path):
    info = SourceInfo(kind="file", description="test", live=False, fps=Fraction(25), width=32, height=24)
    video = open_sink(str(tmp_path / "a.mp4"), info)
    with pytest.raises(OutputBusy, match="a.mp4: another nirvision run"):
        open_sink(str(tmp_path / "a.mp4"), info)
    video.close()
    assert not lock_path(tmp_path / "a.mp4").exists()
    open_sink(str(tmp_path / "a.mp4"), info).close()  # free again
    folder = open_sink(str(tmp_path / "png"), info)
    with pytest.raises(OutputBusy, match=r"output folder .*png: another nirvision run"):
        open_sink(str(tmp_path / "png"), info)
    folder.close()
    assert list((tmp_path / "png").iterdir()) == []  # its claim gone with it
    pieces = open_sink(str(tmp_path / "rec.mp4"), info, segment=60)
    with pytest.raises(OutputBusy, match="rec.mp4: another nirvision run"):
        open_sink(str(tmp_path / "rec.mp4"), info, segment=60)
    pieces.close()


def test_a_second_run_on_the_same_output_exits_2_and_leaves_the_file_alone(tmp_path, tiny_model, holder, capsys):
    clip, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(clip, [0, 40, 80])
    out.write_bytes(b"the other run's file so far")
    proc = holder(out)
    code = main(["colorize", str(clip), "-o", str(out), "--model", str(tiny_model), "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"output {out}: another nirvision run (process {proc.pid}) is writing it" in err
    assert out.read_bytes() == b"the other run's file so far"  # not truncated, not written into


def test_a_batch_skips_the_video_another_run_writes_and_does_the_rest(tmp_path, tiny_model, holder, capsys):
    src, out = tmp_path / "nights", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name, n in (("a.mp4", 3), ("b.mp4", 4), ("c.mp4", 5)):
        make_clip(src / name, [40 * i for i in range(n)])
    proc = holder(out / "b.mp4")
    code = main(["colorize", str(src), "-o", str(out), "--model", str(tiny_model), "--threads", "1", "--no-progress",
                 "--stats-json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"[2/3] {src / 'b.mp4'}: skipped, another nirvision run (process {proc.pid}) is writing {out / 'b.mp4'}" in err
    assert "2 of 3 videos colorized (8 frames); 1 skipped, another run writing it" in err
    assert len(read_video(out / "a.mp4")["times"]) == 3 and len(read_video(out / "c.mp4")["times"]) == 5
    assert not (out / "b.mp4").exists()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["skipped"] == [{"source": str(src / "b.mp4"), "output": str(out / "b.mp4"),
                                 "reason": f"another nirvision run (process {proc.pid}) is writing it"}]
    proc.kill()
    proc.wait()
    # the holder is gone: the next batch takes b.mp4 (--skip-done leaves a and c)
    assert main(["colorize", str(src), "-o", str(out), "--model", str(tiny_model), "--threads", "1", "--no-progress", "--skip-done"]) == 0
    assert len(read_video(out / "b.mp4")["times"]) == 4
    assert "1 of 3 videos colorized (4 frames); 2 done before, skipped" in capsys.readouterr().err
