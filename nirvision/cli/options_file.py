"""``--config FILE``: a command's options from a YAML file, the command line over them.

The file is a mapping of the command's own options, spelled as on the command line without the
dashes (``crf: 23``, ``no-audio: true``, ``segment: 15m``; ``infer_scale`` works too), plus its
positional ``source`` and ``output`` where the command has them (a string or a list). Nothing new
to learn: every key is a flag that ``nirvision COMMAND --help`` describes, checked as that flag
is, so an unknown key, a value of the wrong kind or a choice not offered is a ``ConfigError``
naming the file, the key and what was expected. Options given on the command line win over the
file's (``-o`` on the command line replaces the file's outputs, it does not add to them).
``${NAME}`` in a value is taken from the environment (keep a camera's password out of the file);
a name not set there is an error; ``$${NAME}`` is ``${NAME}`` as written. In a URL's user or password (``rtsp://viewer:${PW}@cam/``) the
value is percent-encoded as it goes in, so the environment holds the password as it is, ``/``,
``:``, ``@`` and ``%`` included; so it is in a password parameter's value (``password=${PW}``,
``pwd=``: an ``&`` or ``#`` in it would end it). Paths are read as on the command line: from the working folder
(``~`` is the home folder).
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import ConfigError, StrictLoader, read_yaml, show_value
from ..io.redact import in_password_param, redact_text

_UNSET = object()


class _OptionsLoader(StrictLoader):
    """Scalars as the command line would read them: words and numbers stay text for the option's
    own type to read (``crf: 020`` is 20, not YAML 1.1's octal 16; ``start: 1:30`` is 1:30, not
    90 by sexagesimal luck), while true / false / on / off / yes / no stay switches and null
    the default."""


_OptionsLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in StrictLoader.yaml_implicit_resolvers.items()
}
_ENV = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${NAME}, or $${NAME}: ${NAME} as written
_TYPE_NAMES = {int: "an integer", float: "a number", Path: "a path"}


# each command's --config help: example keys, and how the command line turns off a switch the file set
CONFIG_EXAMPLES = {
    "colorize": ("crf: 23, no-audio: true", "a switch the file turns on is turned off with --no-SWITCH, or --audio for no-audio"),
    "demo": ("size: 640x480, flip-average: true", "a switch the file turns on is turned off with --no-SWITCH"),
    "evaluate": ("split: val, levels: off", "a switch the file turns on is turned off with --no-SWITCH"),
    "bench": ("sizes: 256x256,640x480, no-engine: true", "a switch the file turns on is turned off with --no-SWITCH, or --engine for no-engine"),
    "export": ("sizes: 640x480, backend: onnxruntime", "a switch the file turns on is turned off with --no-SWITCH"),
}


def add_config_option(p: argparse.ArgumentParser, command: str) -> None:
    """Give ``p`` (the parser of ``nirvision COMMAND``) ``--config``, and let the options it
    requires come from the file: they are checked by ``check_required`` once the file is read."""
    example, negation = CONFIG_EXAMPLES.get(command, CONFIG_EXAMPLES["colorize"])
    p.add_argument("--config", metavar="YAML", action="append",
                   help=f"read options from this YAML file: {command}'s options without their dashes as keys "
                        f"({example}), ${{NAME}} from the environment; the command line wins ({negation})")
    needed = []
    for action in list(p._actions):  # noqa: SLF001 - argparse keeps no public list of a parser's actions
        _add_negation(p, action)
        if action.required and action.option_strings:
            action.required = False
            action.needed = True
        elif not action.option_strings and action.nargs == "+":
            action.nargs = "*"  # SOURCE ... may come from the file
            action.needed = True
        if getattr(action, "needed", False):
            needed.append((action, action.nargs))
    if needed:
        _usage_as_needed(p, needed)


def _usage_as_needed(p: argparse.ArgumentParser, needed: list) -> None:
    """Usage and help show what ``check_required`` requires as argparse shows required
    arguments (``-o SINK``, ``SOURCE [SOURCE ...]``), not as the optional ones they became."""
    def formatted(method):
        def show(*args, **kwargs):
            for action, nargs in needed:
                action.required, action.nargs = True, "+" if nargs == "*" else nargs
            try:
                return method(*args, **kwargs)
            finally:
                for action, nargs in needed:
                    action.required, action.nargs = False, nargs
        return show

    p.format_usage = formatted(p.format_usage)
    p.format_help = formatted(p.format_help)


def _add_negation(p: argparse.ArgumentParser, action: argparse.Action) -> None:
    """``--no-X`` for a switch ``--X`` (``--X`` for ``--no-X``), hidden from the help: what turns
    off a switch that a file turned on."""
    long = [o for o in action.option_strings if o.startswith("--")]
    if not long or action.nargs != 0 or action.const is not True or action.default is not False:
        return
    name = long[0][2:]
    negation = f"--{name[3:]}" if name.startswith("no-") else f"--no-{name}"
    if negation in p._option_string_actions:  # noqa: SLF001
        return
    added = p.add_argument(negation, dest=action.dest, action="store_false", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    added.negation = True


def _actions(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in p._actions  # noqa: SLF001
            if a.dest not in ("help", "config", argparse.SUPPRESS) and not isinstance(a, argparse._HelpAction)  # noqa: SLF001
            and not getattr(a, "negation", False)}


def _multiple(action: argparse.Action) -> bool:
    return action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)  # noqa: SLF001


def _given(p: argparse.ArgumentParser, tokens: list[str]) -> set[str]:
    """The dests that ``tokens`` (the command's part of the command line) set themselves."""
    actions = _actions(p)
    probe = argparse.Namespace(**{dest: (None if _multiple(a) else _UNSET) for dest, a in actions.items()})
    p.parse_args(tokens, namespace=probe)
    return {dest for dest in actions if getattr(probe, dest) not in (_UNSET, None, [])}


def command_tokens(argv: list[str], command: str) -> list[str]:
    """The part of ``argv`` after the command's name (``nirvision``'s own options come before it)."""
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            return argv[i + 1:] if token == command else []
    return []


def _in_userinfo(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` lies in a URL's ``user:password@`` part."""
    scheme = text.rfind("://", 0, start)
    if scheme < 0 or "/" in text[scheme + 3:start]:
        return False
    at = text.find("@", end)
    return at >= 0 and "/" not in text[end:at]


def _expand(text: str, path: str, key: str) -> str:
    from urllib.parse import quote

    def value(m: re.Match) -> str:
        if m[1]:
            return f"${{{m[2]}}}"
        found = os.environ.get(m[2])
        if found is None:
            raise ConfigError(path, key, f"${{{m[2]}}} is not set in the environment; expected it set, or the value written out "
                              f"(or $${{{m[2]}}} for ${{{m[2]}}} itself)")
        # a URL's user or password, or a password parameter's value (password=${PW}): encoded,
        # so that a '@', '/', '&' or '#' in it cannot end it early (and the rest leak unmasked)
        secret = _in_userinfo(text, m.start(), m.end()) or in_password_param(text[:m.start()])
        return quote(found, safe="") if secret else found

    return _REFERENCE.sub(value, text)


def _show(value: Any) -> str:
    """``value`` as the file gave it, for a message: its passwords masked, cut short (an alias
    bomb of a few hundred bytes stands for gigabytes of text)."""
    return show_value(value, mask=redact_text)


def _scalar(action: argparse.Action, value: Any, path: str, key: str, expand: bool = True) -> Any:
    if isinstance(value, (list, tuple, Mapping)):
        raise ConfigError(path, key, f"expected one value, got {_show(value)}")
    if isinstance(value, bool):  # YAML reads off / on / yes / no as booleans
        text = "on" if value else "off"
    else:
        text = _expand(str(value), path, key) if expand else str(value)
        if not expand and _ENV.search(text):  # not used (the command line gives it): its variable need not be set
            return text
        if text.startswith("~"):  # as a shell expands it on the command line
            text = os.path.expanduser(text)
    converted = text
    if action.type is not None:
        try:
            converted = action.type(text)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            name = _TYPE_NAMES.get(action.type, getattr(action.type, "__name__", "another value"))
            raise ConfigError(path, key, f"expected {name}, got {_show(value)}") from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(path, key, f"expected one of: {', '.join(map(str, action.choices))}; got {_show(value)}")
    return converted


def convert(action: argparse.Action, value: Any, path: str, key: str, expand: bool = True) -> Any:
    """``value`` read from the file for ``action``, as the command line would have given it
    (``expand``: with ${NAME} taken from the environment)."""
    if action.nargs == 0:  # a switch: store_true / store_false / store_const
        if not isinstance(value, bool):
            raise ConfigError(path, key, f"expected true or false (a switch), got {_show(value)}")
        return action.const if value else action.default
    if _multiple(action):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise ConfigError(path, key, "expected at least one value, got an empty list")
        return [_scalar(action, v, path, f"{key}[{i}]" if isinstance(value, (list, tuple)) else key, expand) for i, v in enumerate(items)]
    return _scalar(action, value, path, key, expand)


def apply_config(p: argparse.ArgumentParser, args: argparse.Namespace, tokens: list[str], command: str) -> dict[str, str]:
    """Fill ``args`` from its ``--config`` file, leaving what ``tokens`` gave; ConfigError on a bad
    file. Returns {flag: key} of the values taken from the file (for errors found later)."""
    if len(args.config) > 1:
        raise ConfigError("", "", f"given {len(args.config)} times ({', '.join(map(str, args.config))}); expected one file")
    path = str(args.config[0])
    data = read_yaml(path, loader=_OptionsLoader)
    if data is None:  # an empty file (or comments only): no options
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path, "", f"expected a mapping of nirvision {command} options (crf: 23, ...), got {_show(data)}")
    actions = _actions(p)
    given = _given(p, tokens)
    applied: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, value in data.items():
        name = str(key)
        dest = name.lstrip("-").replace("-", "_")
        if dest in seen:
            raise ConfigError(path, name, f"the same option as key '{seen[dest]}'; expected one of them")
        seen[dest] = name
        action = actions.get(dest)
        if action is None:
            keys = sorted(a.dest.replace("_", "-") for a in actions.values())
            close = difflib.get_close_matches(name.lstrip("-"), keys, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of: {', '.join(keys)}"
            why = "read from the command line only" if dest == "config" else f"not an option of nirvision {command}"
            raise ConfigError(path, name, why + hint)
        if value is None:
            continue
        # checked even where the command line wins (a wrong file is found now), but a ${NAME}
        # of a value not used need not be set
        converted = convert(action, value, path, name, expand=dest not in given)
        if dest not in given:
            setattr(args, dest, converted)
            flags = [o for o in action.option_strings if o.startswith("--")]
            if flags:
                applied[flags[0]] = name
    return applied


def name_the_key(message: str, applied: Mapping[str, str], path: str, args: argparse.Namespace | None = None) -> str:
    """An error about a flag's value that came from the file says so: ``--segment banana: ...``
    -> ``... (--config cam.yaml, key 'segment')``; so does one that names the value itself
    (``checkpoint nothere.pt: file not found``, from ``weights: nothere.pt``)."""
    for flag, key in applied.items():
        if message.startswith((flag + " ", flag + ":")):
            return f"{message} (--config {path}, key '{key}')"
    for flag, key in applied.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None) if args is not None else None
        for item in value if isinstance(value, list) else [value]:
            text = str(item) if isinstance(item, (str, Path)) else ""
            if len(text) >= 3 and (f" {text}:" in message or f" {text} " in message or message.startswith(text + ":")):
                return f"{message} (--config {path}, key '{key}')"
    return message


def check_required(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What the command cannot run without, from the command line or the file (argparse's own
    error and exit code 2 otherwise)."""
    missing = []
    for action in p._actions:  # noqa: SLF001
        value = getattr(args, action.dest, None)
        if getattr(action, "needed", False) and value in (None, []):
            missing.append("/".join(action.option_strings) or action.metavar or action.dest)
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)} (on the command line or in --config)")
