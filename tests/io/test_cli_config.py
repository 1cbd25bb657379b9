"""``--config FILE``: a command's options from YAML, the command line over them, bad files refused."""
import json
from pathlib import Path

import pytest

from nirvision.cli import build_parser, main
from nirvision.cli.options_file import apply_config, command_tokens
from tests.io.media import make_clip, read_video

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *args):
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_gives_source_outputs_and_options(tmp_path, tiny_model, capsys):
    cfg = write(tmp_path / "job.yaml", f"""
source: synthetic:64x48@25:6
output: [{tmp_path / 'out.mp4'}, {tmp_path / 'frames'}]
model: {tiny_model}
side-by-side: true
levels: off          # YAML reads this as false: it means --levels off
infer_scale: 0.5     # underscores work as dashes
stats-json: {tmp_path / 's.json'}
threads: 1
no-progress: true
""")
    code, _, err = run(capsys, "colorize", "--config", cfg)
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_out"] == 6
    assert stats["backend"]["levels"] == "off" and stats["backend"]["infer_scale"] == 0.5
    assert read_video(tmp_path / "out.mp4")["sizes"] == [(48, 128)] * 6  # side by side
    assert len(list((tmp_path / "frames").glob("*.png"))) == 6


def test_command_line_wins_and_its_outputs_replace_the_files(tmp_path, tiny_model, capsys):
    cfg = write(tmp_path / "job.yaml", f"""
source: synthetic:64x48@25:20
output: {tmp_path / 'from_file.mp4'}
max-frames: 8
crf: 40
side-by-side: true
""")
    code, _, err = run(capsys, "colorize", "--config", cfg, "synthetic:32x32@25:20", "-o", tmp_path / "cli.mp4", "--max-frames", "3",
                       "--model", tiny_model, "--threads", "1", "--no-progress", "--stats-json", tmp_path / "s.json")
    assert code == 0, err
    assert not (tmp_path / "from_file.mp4").exists()
    video = read_video(tmp_path / "cli.mp4")
    assert video["sizes"] == [(32, 64)] * 3  # the command line's source and frame count, the file's side-by-side
    assert json.loads((tmp_path / "s.json").read_text())["frames_out"] == 3


def test_values_as_the_command_line_takes_them(tmp_path):
    parser = build_parser()
    cfg = write(tmp_path / "job.yaml", """
source: [a.mp4, b.mp4]
output: out/
side-by-side: false      # a switch left off
no-audio: true
crf: null                # the default
reconnect: forever
open-timeout: 2          # an integer for a float option
stats-json: ~/s.json     # the home folder, as a shell would expand it
""")
    argv = ["colorize", "--config", str(cfg), "--crf", "30"]
    args = parser.parse_args(argv)
    apply_config(parser.commands["colorize"], args, command_tokens(argv, "colorize"), "colorize")
    assert args.source == ["a.mp4", "b.mp4"] and args.output == ["out/"]
    assert args.side_by_side is False and args.no_audio is True and args.crf == 30
    assert args.reconnect == "forever" and args.open_timeout == 2.0
    assert args.stats_json == str(Path.home() / "s.json")


def test_environment_variables_fill_values(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.setenv("NV_TEST_SIZE", "48x32")
    cfg = write(tmp_path / "job.yaml", f"source: synthetic:${{NV_TEST_SIZE}}@25:4\noutput: {tmp_path / 'o.mp4'}\n")
    code, _, err = run(capsys, "colorize", "--config", cfg, "--model", tiny_model, "--threads", "1", "--no-progress")
    assert code == 0, err
    assert read_video(tmp_path / "o.mp4")["sizes"] == [(32, 48)] * 4


def test_a_password_from_the_environment_is_percent_encoded_in_a_url(monkeypatch):
    from nirvision.cli.options_file import _expand
    from nirvision.io.redact import redact_url

    monkeypatch.setenv("NV_TEST_PW", "p@ss/w:rd%")
    monkeypatch.setenv("NV_TEST_USER", "op er")
    monkeypatch.setenv("NV_TEST_HOST", "cam.local:554")
    url = _expand("rtsp://${NV_TEST_USER}:${NV_TEST_PW}@${NV_TEST_HOST}/s?x=${NV_TEST_PW}", "f.yaml", "source")
    # user and password encoded; the host and a query value (not user info) as they are
    assert url == "rtsp://op%20er:p%40ss%2Fw%3Ard%25@cam.local:554/s?x=p@ss/w:rd%"
    from urllib.parse import unquote, urlsplit

    assert unquote(urlsplit(url).password) == "p@ss/w:rd%" and urlsplit(url).hostname == "cam.local"
    assert "p%40ss" not in redact_url(url.split("?")[0])
    assert _expand("recordings/${NV_TEST_PW}.mp4", "f.yaml", "output") == "recordings/p@ss/w:rd%.mp4"



def test_a_doubled_dollar_keeps_a_reference_as_written(monkeypatch):
    from nirvision.cli.options_file import _expand

    monkeypatch.setenv("NV_TEST_PW", "x$${NV_TEST_PW}y")
    monkeypatch.delenv("NV_TEST_NOT_SET", raising=False)
    # $${NAME} is ${NAME} itself, whether or not NAME is set; a value from the environment is taken as it is
    assert _expand("night_$${NV_TEST_NOT_SET}.mp4", "f.yaml", "output") == "night_${NV_TEST_NOT_SET}.mp4"
    assert _expand("$${NV_TEST_PW}-${NV_TEST_PW}", "f.yaml", "output") == "${NV_TEST_PW}-x$${NV_TEST_PW}y"
    assert _expand("cost $5 {a}", "f.yaml", "output") == "cost $5 {a}"

BAD = [
    ("crff: 3", ["key 'crff'", "not an option of nirvision colorize", "did you mean 'crf'"]),
    ("threads: many", ["key 'threads'", "expected an integer, got 'many'"]),
    ("precision: fp64", ["key 'precision'", "expected one of: auto, fp32, bf16, fp16, int8"]),
    ("side-by-side: yes please", ["key 'side-by-side'", "expected true or false"]),
    ("crf: [1, 2]", ["key 'crf'", "expected one value"]),
    ("output: []", ["key 'output'", "expected at least one value"]),
    ("config: other.yaml", ["key 'config'", "read from the command line only"]),
    ("preset: ${NV_TEST_NOT_SET}", ["key 'preset'", "${NV_TEST_NOT_SET} is not set in the environment"]),
    ("- crf: 3", ["expected a mapping of nirvision colorize options"]),
    ("crf: [1", ["not valid YAML at line 2"]),
    ("crf: 18\ncrf: 30", ["at line 2, column 1: key 'crf' given twice"]),
    ("no-audio: true\nno_audio: false", ["key 'no_audio': the same option as key 'no-audio'"]),
    ("source: |\nrtsp://u:hunter2@cam/x", ["not valid YAML"]),  # the line is not quoted: it may hold a password
    ("weights: nothere.pt", ["checkpoint nothere.pt: file not found", "key 'weights'"]),  # found when the run loads it
]


@pytest.mark.parametrize("text,says", BAD, ids=[b[0].split("\n")[0] for b in BAD])
def test_bad_config_is_refused_naming_file_and_key(tmp_path, capsys, text, says):
    cfg = write(tmp_path / "job.yaml", text + "\n")
    code, _, err = run(capsys, "colorize", "--config", cfg, "synthetic:32x32@25:2", "-o", tmp_path / "o.mp4", "--model", "lite")
    assert code == 2
    assert f"--config {cfg}" in err and all(s in err for s in says), err
    assert "hunter2" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_a_file_that_is_not_utf8_or_given_twice(tmp_path, capsys):
    (tmp_path / "latin1.yaml").write_bytes(b"output: caf\xe9.mp4\n")
    code, _, err = run(capsys, "colorize", "--config", tmp_path / "latin1.yaml", "synthetic:32x32@25:2")
    assert code == 2 and "latin1.yaml: not UTF-8 text" in err
    one = write(tmp_path / "one.yaml", "crf: 20\n")
    code, _, err = run(capsys, "colorize", "--config", one, "--config", one, "synthetic:32x32@25:2", "-o", tmp_path / "o.mp4")
    assert code == 2 and "--config given 2 times" in err


def test_values_checked_later_name_the_file_and_key(tmp_path, capsys):
    cfg = write(tmp_path / "job.yaml", f"source: synthetic:32x32@25:2\noutput: {tmp_path / 'o.mp4'}\nsegment: banana\n")
    code, _, err = run(capsys, "colorize", "--config", cfg, "--model", "lite")
    assert code == 2 and err.strip().endswith(f"(--config {cfg}, key 'segment')"), err
    code, _, err = run(capsys, "colorize", "--config", cfg, "--model", "lite", "--segment", "0")
    assert code == 2 and "--segment 0" in err and "key 'segment'" not in err  # the command line's value: no file to name


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run(capsys, "colorize", "--config", tmp_path / "nope.yaml", "synthetic:32x32@25:2", "-o", tmp_path / "o.mp4")
    assert code == 2 and "nope.yaml: file not found" in err


def test_passwords_stay_out_of_config_errors(tmp_path, capsys):
    cfg = write(tmp_path / "job.yaml", "source: rtsp://u:hunter2@cam/x\noutput: o.mp4\nopen-timeout: rtsp://u:hunter2@cam/y\n")
    code, _, err = run(capsys, "colorize", "--config", cfg)
    assert code == 2 and "key 'open-timeout': expected a number, got 'rtsp://u:***@cam/y'" in err
    assert "hunter2" not in err


def test_what_a_command_needs_from_the_command_line_or_the_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["colorize", "-o", str(tmp_path / "o.mp4")])
    assert exc.value.code == 2
    assert "required: SOURCE (on the command line or in --config)" in capsys.readouterr().err
    cfg = write(tmp_path / "job.yaml", "source: synthetic:32x32@25:2\n")
    with pytest.raises(SystemExit) as exc:
        main(["colorize", "--config", str(cfg)])
    assert exc.value.code == 2 and "required: -o/--output" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate"])
    assert exc.value.code == 2 and "required: --data" in capsys.readouterr().err
    # the usage shows them as required (the file may give them, but one of the two must)
    with pytest.raises(SystemExit):
        main(["colorize", "--help"])
    usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
    assert " -o SINK " in usage and usage.endswith("SOURCE [SOURCE ...]") and "[-o SINK]" not in usage
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--data DATA " in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("[sb]*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_stream_and_bench_configs_read(path, monkeypatch):
    monkeypatch.setenv("NIRVISION_CAM_PASSWORD", "pw")
    monkeypatch.setenv("NIRVISION_VIEW_PASSWORD", "pw2")
    command = {"streams": "colorize", "bench": "bench"}[path.parent.name]
    parser = build_parser()
    argv = [command, "--config", str(path)]
    args = parser.parse_args(argv)
    apply_config(parser.commands[command], args, command_tokens(argv, command), command)
    if command == "bench":
        assert (REPO / args.weights).is_file()  # from the repository root, as its comment says
    else:
        assert args.source and args.output


def test_shipped_night_batch_config_runs(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "night").mkdir()
    for name in ("a", "b"):
        make_clip(tmp_path / "night" / f"{name}.mp4", [0, 40, 80])
    cfg = REPO / "configs/streams/night-batch.yaml"
    code, _, err = run(capsys, "colorize", "--config", cfg, "--model", tiny_model, "--threads", "1", "--no-progress")
    assert code == 0, err
    for name in ("a", "b"):
        assert len(read_video(tmp_path / "colorized" / f"{name}.mp4")["times"]) == 3
        assert (tmp_path / "colorized" / f"{name}_sheet.png").stat().st_size > 0
    code, _, err = run(capsys, "colorize", "--config", cfg, "--model", tiny_model, "--threads", "1", "--no-progress")
    assert code == 0 and "2 done before, skipped" in err  # skip-done from the file


def test_shipped_camera_config_runs_on_a_live_clip(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NIRVISION_CAM_PASSWORD", raising=False)  # the file's source is replaced: its password is not needed
    cfg = REPO / "configs/streams/rtsp-camera.yaml"
    code, _, err = run(capsys, "colorize", "--config", cfg, "synthetic:32x32@25:40", "--live", "-o", "recordings/gate.mp4",
                       "--segment", "1", "--model", tiny_model, "--threads", "1", "--no-progress", "--stats-json", "s.json")
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    pieces = sorted((tmp_path / "recordings").glob("gate_*.mp4"))
    assert [Path(p).name for p in stats["pieces"]] == [p.name for p in pieces] and len(pieces) >= 2
    assert sum(len(read_video(p)["times"]) for p in pieces) == stats["frames_out"]


def test_numbers_and_switches_read_as_on_the_command_line(tmp_path, monkeypatch):
    parser = build_parser()
    cfg = write(tmp_path / "job.yaml", """
source: a.mp4
output: o.mp4
crf: 020                 # 20 as --crf 020, not YAML 1.1's octal 16
start: 1:30              # the text, read by --start as 90 s
side-by-side: true
no-audio: true
threads: ${NV_TEST_UNSET_THREADS}   # the command line gives it: the variable need not be set
""")
    monkeypatch.delenv("NV_TEST_UNSET_THREADS", raising=False)
    argv = ["colorize", "--config", str(cfg), "--no-side-by-side", "--audio", "--threads", "1"]
    args = parser.parse_args(argv)
    apply_config(parser.commands["colorize"], args, command_tokens(argv, "colorize"), "colorize")
    assert args.crf == 20 and args.start == "1:30" and args.threads == 1
    assert args.side_by_side is False and args.no_audio is False  # switches the file turned on, turned off on the command line


def test_an_empty_file_gives_no_options(tmp_path, tiny_model, capsys):
    cfg = write(tmp_path / "job.yaml", "# options to come\n")
    code, _, err = run(capsys, "colorize", "--config", cfg, "synthetic:32x32@25:2", "-o", tmp_path / "o.mp4", "--model", tiny_model,
                       "--threads", "1", "--no-progress")
    assert code == 0, err
    assert len(read_video(tmp_path / "o.mp4")["times"]) == 2


@pytest.mark.parametrize("command", ["colorize", "demo", "evaluate", "bench", "export"])
def test_each_commands_config_help_gives_keys_it_takes(command, tmp_path, capsys):
    """The example keys in ``--config``'s help are options of that command (a file of them is read)."""
    import re

    from nirvision.cli import build_parser
    from nirvision.cli.options_file import CONFIG_EXAMPLES, apply_config

    example, negation = CONFIG_EXAMPLES[command]
    cfg = write(tmp_path / "ex.yaml", "\n".join(part.strip() for part in example.split(", ")) + "\n")
    parser = build_parser()
    sub = parser.commands[command]
    args = parser.parse_args([command, "--config", str(cfg)])
    applied = apply_config(sub, args, [], command)
    assert len(applied) == example.count(":")
    for flag in re.findall(r"--[a-z-]+", negation.replace("--no-SWITCH", "")):
        assert flag in sub._option_string_actions
