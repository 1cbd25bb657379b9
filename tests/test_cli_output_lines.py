"""What the command prints stays one line per message: names from the disk (a file called
"a\\nfake line.mp4", a terminal escape) are shown escaped in errors and in the log."""
import logging

from nirvision.cli import _OneLineFormatter, main


def test_an_error_naming_a_file_with_a_newline_is_one_line(tmp_path, capsys):
    bad = tmp_path / "night\nnirvision colorize: 100 frames written.mp4"
    bad.write_bytes(b"not a video")
    assert main(["colorize", str(bad), "-o", str(tmp_path / "out.mp4"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if "error:" in x]
    assert "night\\nnirvision colorize: 100 frames written.mp4" in line
    assert not any(x.startswith("nirvision colorize: 100 frames") for x in err.splitlines())


def test_log_messages_escape_control_characters_but_keep_tracebacks():
    formatter = _OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("nirvision.io", logging.WARNING, __file__, 1, "skipped %s", ("cam\x1b[31mRED\rFAKE.png",), None)
    assert formatter.format(record) == "WARNING nirvision.io: skipped cam\\x1b[31mRED\\rFAKE.png"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("n", logging.ERROR, __file__, 1, "failed\nhere", (), sys.exc_info())
    text = formatter.format(record)
    assert text.startswith("ERROR n: failed\\nhere\nTraceback (most recent call last):") and text.endswith("ValueError: boom")
