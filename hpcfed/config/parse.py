"""Job mappings to frozen dataclasses and back: YAML files, ``--set`` overrides, typed conversion.

Generic: nothing here knows a job's sections. Every job and job-set file and every ``--set`` value
is read by :func:`load_yaml`: safe YAML in which a key given twice in one mapping is an error
naming the key and both lines (PyYAML keeps the last silently). A dataclass is built from a
mapping field by field (unknown keys, wrong types and non-mappings raise a one-line :class:`ConfigError` naming the key);
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

from hpcfed.errors import ConfigError, did_you_mean

_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one YAML mapping (lines count from 1)."""

    def __init__(self, key: Any, first: int, second: int):
        where = f"on line {first}" if first == second else f"at lines {first} and {second}"
        super().__init__(f"key {key!r} is given twice in one mapping, {where}; keep one")
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that raises :class:`DuplicateKey`. construct_mapping flattens merges (``<<``,
    whose keys a mapping may override) first, in place and into nested mappings too: each mapping
    is therefore checked there, once, before its keys are changed."""

    def flatten_mapping(self, node):
        checked = self.__dict__.setdefault("_checked", set())
        if id(node) not in checked:
            checked.add(id(node))
            lines = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue   # an unhashable key: SafeLoader names it
                if key in lines:
                    raise DuplicateKey(key, lines[key], key_node.start_mark.line + 1)
                lines[key] = key_node.start_mark.line + 1
        super().flatten_mapping(node)


def load_yaml(text: str) -> Any:
    """``text`` as safe YAML; a key given twice in one mapping raises :class:`DuplicateKey`."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def read_mapping(path: str, what: str) -> dict[str, Any]:
    """The YAML mapping in file ``path`` ({} if empty); errors call the file ``what`` (e.g. "job file")."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {path!r} does not exist or is not a file")
    try:
        loaded = load_yaml(p.read_text())
    except DuplicateKey as err:
        raise ConfigError(f"{what} {path!r}: {err}") from None
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
        value = load_yaml(text) if text.strip() else ""
    except DuplicateKey as err:
        raise ConfigError(f"--set {item!r}: {err}") from None
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
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key{did_you_mean(unknown[0], names)}; accepted keys here: "
                          f"{', '.join(names)}")
    return cls(**{name: convert(hints[name], raw[name], prefix + name) for name in names if name in raw})


def convert(hint: Any, value: Any, key: str) -> Any:
    """``value`` as type ``hint`` (a dataclass, tuple, bool, int, float or str); errors name ``key``."""
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            written = value.strip("[]() ") if isinstance(value, str) else value
            raise ConfigError(f"{key} = {value!r}: expected a list, written [{written}] "
                              f"(in a job file, or --set {key}=[{written}])")
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
