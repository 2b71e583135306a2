"""Job mappings to frozen dataclasses and back: YAML files, ``--set`` overrides, typed conversion.

Generic: nothing here knows a job's sections. A dataclass is built from a mapping field by field
(unknown keys, wrong types and non-mappings raise a one-line :class:`ConfigError` naming the key);
a dataclass whose section has its own layout defines ``from_mapping(raw, key)`` and
``to_mapping()``, which :func:`build` and :func:`to_mapping` use instead.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from hpcfed.errors import ConfigError

_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def read_mapping(path: str, what: str) -> dict[str, Any]:
    """The YAML mapping in file ``path`` ({} if empty); errors call the file ``what`` (e.g. "job file")."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {path!r} does not exist or is not a file")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what} {path!r} is not valid YAML{where}: "
                          f"{getattr(err, 'problem', None) or err}".replace("\n", " ")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{what} {path!r} cannot be read: {err}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{what} {path!r} must hold a mapping of keys; got {type(loaded).__name__}")
    return loaded or {}


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set the dotted key of ``key.sub=value`` in ``raw`` (in place) to the value read as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key.sub=value, e.g. --set rounds=50")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def build(cls: type, raw: Any, key: str) -> Any:
    """An instance of dataclass ``cls`` from mapping ``raw``, which sits at dotted ``key`` ("" = the job)."""
    if hasattr(cls, "from_mapping"):
        return cls.from_mapping(raw, key)
    if not isinstance(raw, dict):
        raise ConfigError(f"{key or 'job'}: expected a mapping; got {raw!r}")
    prefix = f"{key}." if key else ""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; accepted keys here: {', '.join(names)}")
    return cls(**{name: convert(hints[name], raw[name], prefix + name) for name in names if name in raw})


def convert(hint: Any, value: Any, key: str) -> Any:
    """``value`` as type ``hint`` (a dataclass, tuple, bool, int, float or str); errors name ``key``."""
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{key} = {value!r}: expected a list of {len(args)} values")
        item = args[0]
        return tuple(convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = float(value)    # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r}: expected a number")
        return float(value)
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def to_mapping(value: Any) -> Any:
    """``value`` as plain YAML data: dataclasses as mappings of their fields, tuples as lists."""
    if hasattr(value, "to_mapping"):
        return value.to_mapping()
    if dataclasses.is_dataclass(value):
        return {f.name: to_mapping(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_mapping(v) for v in value]
    return value


def flow(value: Any) -> str:
    """``value`` as one line of YAML flow style, e.g. ``{beta0: 0.5}``."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=float("inf")).splitlines()[0]
