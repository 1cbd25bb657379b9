"""The ``nirvision`` command. Each subcommand lives in its own module with ``add_parser`` and ``run``.

Exit codes: 0 done, 2 bad usage or input, 1 failure. Errors print one line, no traceback
(``--debug`` shows it too, and the exit code stays the same). ``-v`` and ``--debug`` are taken
before the command or after it (``nirvision colorize SRC -o out.mp4 -v``).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import sys
import traceback

from .. import __version__

# name -> module (in nirvision.cli) holding add_parser(subparsers) and run(args) -> int
COMMANDS = {
    "info": "info",
    "colorize": "colorize",
    "demo": "demo",
    "evaluate": "evaluate",
    "bench": "bench",
    "export": "export",
    "cache": "cache",
}
# commands whose options may come from a YAML file (``--config``; see options_file)
CONFIGURABLE = ("colorize", "demo", "evaluate", "bench", "export")


class _CountAfter(argparse.Action):
    """``-v`` given after the command: counted apart (``verbose_after``), as a subcommand's
    values replace the top level's, and added to ``-v`` before the command by ``main``. Its
    dest is SUPPRESS, so it is no key of ``--config`` files."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.verbose_after = getattr(namespace, "verbose_after", 0) + 1


class _DebugAfter(_CountAfter):
    """``--debug`` given after the command (see ``_CountAfter``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.debug_after = True


def add_global_options(p: argparse.ArgumentParser) -> None:
    """``-v`` and ``--debug`` on a command's parser, so they may follow the command too."""
    p.add_argument("-v", "--verbose", action=_CountAfter, help="more log output (-vv for debug); also before the command")
    p.add_argument("--debug", action=_DebugAfter, help="show tracebacks on errors (the exit code stays); also before the command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nirvision",
        description="Colorize near-infrared (NIR) video and images with MPFNet.",
    )
    parser.add_argument("--version", action="version", version=f"nirvision {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .options_file import add_config_option

    for name, module in COMMANDS.items():
        importlib.import_module(f".{module}", __name__).add_parser(sub)
        if name in CONFIGURABLE:
            add_config_option(sub.choices[name], name)
        add_global_options(sub.choices[name])
    parser.commands = sub.choices  # name -> the command's parser
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed: list = []  # the command's args, once parsed (--config's values are set on them)
    try:
        return _main(argv, parsed)
    except KeyboardInterrupt:  # before the command's own handling: its parser built, torch imported (seconds)
        return _interrupted_early(argv, parsed)


def _options(argv: list[str], parsed: list) -> tuple[argparse.ArgumentParser, argparse.Namespace, dict[str, str]]:
    """(the parser, the args, flag -> key of the values taken from ``--config``); the args go
    to ``parsed`` as soon as they are made. A bad ``--config`` raises ConfigError."""
    from .options_file import apply_config, command_tokens

    parser = build_parser()
    args = parser.parse_args(argv)
    parsed.append(args)
    args.verbose += getattr(args, "verbose_after", 0)
    args.debug = args.debug or getattr(args, "debug_after", False)
    applied: dict[str, str] = {}
    if args.command in CONFIGURABLE and args.config is not None:
        applied = apply_config(parser.commands[args.command], args, command_tokens(argv, args.command), args.command)
    return parser, args, applied


def _interrupted_early(argv: list[str], parsed: list) -> int:
    """A Ctrl-C before the command's own handling: the one line and exit code 130 of a Ctrl-C
    during the command, and ``--stats-json`` saying ``stopped_by: SIGINT`` as for a stop before
    its engine started (where the file may be written: not a source or an output of the run)."""
    try:
        if not parsed:  # stopped while the parser was built: built again, quietly, for the command and its --stats-json
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    _options(argv, parsed)
                except (Exception, SystemExit):  # noqa: BLE001 - bad usage, a bad --config: the stop is what to report
                    pass
        args = parsed[0] if parsed else None
        if args is not None and args.command == "colorize" and getattr(args, "stats_json", None) and not getattr(args, "stats_checked", False):
            from ..errors import InputError
            from .colorize import check_stats_path, record_failure

            try:
                check_stats_path(args, args.source, args.output)
            except InputError:  # a file that may not be written (a source of the run): none is
                pass
            record_failure(args, KeyboardInterrupt())
    except KeyboardInterrupt:  # a second Ctrl-C: leave without the record
        pass
    command = getattr(parsed[0], "command", None) if parsed else None
    print(f"nirvision {command}: interrupted" if command else "nirvision: interrupted", file=sys.stderr)
    return 130


def _printable(text) -> str:
    from ..io.redact import printable

    return printable(text)


class _OneLineFormatter(logging.Formatter):
    """Log messages on one line each: a file name's newline or terminal escape is shown escaped,
    so that it cannot forge a line of the log (a traceback after it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _printable(record.message)
        return super().formatMessage(record)


def _main(argv: list[str], parsed: list) -> int:
    from ..config import ConfigError
    from .options_file import check_required, name_the_key

    try:
        parser, args, applied = _options(argv, parsed)
    except ConfigError as exc:
        print(f"nirvision {parsed[0].command}: error: --config {exc}", file=sys.stderr)
        return 2
    if not args.command:
        parser.print_help()
        return 2
    if args.command in CONFIGURABLE:
        check_required(parser.commands[args.command], args)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), handlers=[handler])
    from ..errors import usage_errors

    usage = usage_errors()  # imported now: a Ctrl-C while a command imports torch must not import it again in the except clause
    try:
        return int(args.func(args) or 0)
    except usage as exc:
        if args.debug:  # the traceback, and still the exit code of an input error
            traceback.print_exc()
        message = name_the_key(str(exc), applied, args.config[0], args) if applied else str(exc)
        print(f"nirvision {args.command}: error: {_printable(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nirvision {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            traceback.print_exc()
        print(f"nirvision {args.command}: failed: {type(exc).__name__}: {_printable(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
