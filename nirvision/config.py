"""Typed configuration: YAML files loaded into dataclasses with strict checking.

Model sizes and training schedules are dataclasses (the commands' settings files, ``--config``,
are checked against the commands' own options instead: ``nirvision.cli.options_file``).
``load_dataclass`` turns a mapping into one, and rejects unknown keys, missing keys and values
of the wrong type with a ``ConfigError`` that names the file, the dotted key and what was
expected.
"""
from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A configuration file or mapping does not fit its schema."""

    def __init__(self, source: str, key: str, message: str):
        self.source = source
        self.key = key
        where = f"{source}: " if source else ""
        at = f"key '{key}': " if key else ""
        super().__init__(f"{where}{at}{message}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


SHOWN = 200  # characters of a value shown in a message


def show_value(value: Any, limit: int = SHOWN, mask=None) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters with ``...``, and built no
    further than that: a YAML alias bomb (a few hundred bytes of anchors that stand for
    gigabytes of nested lists) is shown at once, where ``repr`` would build all of it. ``mask``:
    applied to each string first (``redact_text``, for passwords)."""
    out: list[str] = []
    room = limit

    def put(text: str) -> bool:
        nonlocal room
        out.append(text[:max(room, 0)])
        room -= len(text)
        return room > 0

    def walk(v: Any, open_: tuple[int, ...]) -> bool:  # False once the room is used
        if isinstance(v, (list, tuple, dict, set, frozenset)):
            if id(v) in open_:  # a list that holds itself (YAML allows it), as repr shows it
                return put("[...]" if isinstance(v, list) else "{...}")
            ends = {list: "[]", tuple: "()", dict: "{}"}.get(type(v), "{}")
            if not put(ends[0]):
                return False
            items = v.items() if isinstance(v, dict) else v
            for i, item in enumerate(items):
                if i and not put(", "):
                    return False
                if isinstance(v, dict):
                    if not (walk(item[0], open_ + (id(v),)) and put(": ")):
                        return False
                    item = item[1]
                if not walk(item, open_ + (id(v),)):
                    return False
            if isinstance(v, tuple) and len(v) == 1 and not put(","):
                return False
            return put(ends[1])
        if isinstance(v, (str, bytes)):
            v = mask(v) if mask is not None and isinstance(v, str) else v
            return put(repr(v[:limit + 1]))  # a long string is cut before its repr is made
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 256:
            return put(f"<an integer of about {int(v.bit_length() * 0.30103) + 1} digits>")
        return put(repr(v))

    walk(value, ())
    text = "".join(out)
    return text + "..." if room < 0 else text


def _convert(value: Any, tp: Any, source: str, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(source, key, f"expected {_type_name(tp)}, got {show_value(value)}")
    if origin in (Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            try:
                return _convert(value, arg, source, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(source, key, f"expected {_type_name(tp)}, got {show_value(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(source, key, f"expected null, got {show_value(value)}")
    if dataclasses.is_dataclass(tp):
        return load_dataclass(tp, value, source=source, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, f"expected {_type_name(tp)}, got {show_value(value)}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        items = [_convert(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a mapping, got {show_value(value)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):  # YAML 1.1 reads 2e-4 (no dot) as text
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config field type {tp!r}")
    raise ConfigError(source, key, f"expected {_type_name(tp)}, got {show_value(value)}")


def load_dataclass(cls: type[T], data: Any, source: str = "", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and types strictly."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, prefix, f"expected a mapping ({cls.__name__}), got {show_value(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name in data:
        if name not in fields:
            dotted = f"{prefix}.{name}" if prefix else str(name)
            raise ConfigError(
                source, dotted, f"unknown key; expected one of: {', '.join(sorted(fields))}"
            )
    for name, field in fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(source, dotted, f"missing; expected {_type_name(hints[name])}")
            continue
        kwargs[name] = _convert(data[name], hints[name], source, dotted)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(source, prefix, str(exc)) from None
    return obj


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last
    silently: a setting changed at the top of a file and again at its end); keys merged in
    with ``<<`` may still be overridden."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"key '{key_node.value}' given twice; expected it once",
                                                                key_node.start_mark)
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, loader: type = StrictLoader) -> Any:
    """Read a YAML file, turning I/O, encoding and syntax problems into ``ConfigError`` (one
    line: where and what, never the offending text, which may hold a password)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text (byte {exc.start}); expected a YAML file saved as UTF-8") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - loader is SafeLoader or a subclass of it
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        kind = "" if isinstance(exc, yaml.constructor.ConstructorError) else "not valid YAML"
        raise ConfigError(str(path), "", f"{kind}{where}: {what}".lstrip(" :") if kind else f"{where.strip()}: {what}") from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load a YAML file into dataclass ``cls``."""
    return load_dataclass(cls, read_yaml(path), source=str(path))


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict/list/scalars (what ``load_dataclass`` reads back)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


__all__ = ["ConfigError", "StrictLoader", "load_dataclass", "load_yaml", "read_yaml", "show_value", "to_dict"]
