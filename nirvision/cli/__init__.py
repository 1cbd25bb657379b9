"""The ``nirvision`` command. Each subcommand lives in its own module with ``add_parser`` and ``run``.

Exit codes: 0 done, 2 bad usage or input, 1 failure. Errors print one line, no traceback
(``--debug`` shows it too, and the exit code stays the same). ``-v`` and ``--debug`` are taken
before the command or after it (``nirvision colorize SRC -o out.mp4 -v``).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from .. import __version__
from .options_file import add_config_option, apply_config, check_required, command_tokens, name_the_key

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
    for name, module in COMMANDS.items():
        importlib.import_module(f".{module}", __name__).add_parser(sub)
        if name in CONFIGURABLE:
            add_config_option(sub.choices[name], name)
        add_global_options(sub.choices[name])
    parser.commands = sub.choices  # name -> the command's parser
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.verbose += getattr(args, "verbose_after", 0)
    args.debug = args.debug or getattr(args, "debug_after", False)
    if not args.command:
        parser.print_help()
        return 2
    applied: dict[str, str] = {}  # flag -> key of the values taken from --config
    if args.command in CONFIGURABLE:
        command = parser.commands[args.command]
        if args.config is not None:
            from ..config import ConfigError

            try:
                applied = apply_config(command, args, command_tokens(argv, args.command), args.command)
            except ConfigError as exc:
                print(f"nirvision {args.command}: error: --config {exc}", file=sys.stderr)
                return 2
        check_required(command, args)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ..errors import usage_errors

    usage = usage_errors()  # imported now: a Ctrl-C while a command imports torch must not import it again in the except clause
    try:
        return int(args.func(args) or 0)
    except usage as exc:
        if args.debug:  # the traceback, and still the exit code of an input error
            traceback.print_exc()
        message = name_the_key(str(exc), applied, args.config[0], args) if applied else str(exc)
        print(f"nirvision {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nirvision {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            traceback.print_exc()
        print(f"nirvision {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
