"""A job from mappings: a job file, ``--set`` overrides or a job set's method, built into the schema
(hpcfed.config) with the method's own options and checked.

The ``strategy`` section names the method and, under the method's name, its options; each strategy
declares them as a frozen dataclass, ``Options``, in its own module (hpcfed/strategies/)::

    strategy: {name: superfed, superfed: {beta0: 0.9, weighting: maxnet}}
    --set strategy.efedsup.tiers=fixed4

The options classes are found through the strategy registry, so this module sits above the
strategies. Unknown keys, wrong types and impossible values raise a :class:`ConfigError` whose one
line names the key, the value and what is accepted.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hpcfed.config import DEFAULT_METHOD, JobConfig, StrategyConfig, StrategyOptions
from hpcfed.config.checks import validate
from hpcfed.config.parse import apply_override, build, convert, flow, read_mapping
from hpcfed.errors import ConfigError, did_you_mean
from hpcfed.strategies import STRATEGIES


def load_job(path: str | None = None, overrides: list[str] = ()) -> JobConfig:
    """Read a job file (None = the built-in default job), apply ``key.sub=value`` overrides, check it."""
    raw = read_mapping(path, "job file") if path else {}
    if "methods" in raw:
        raise ConfigError(f"job file {path!r} is a job set (base and methods, hpcfed/experiments/jobset.py); run its "
                          f"methods with tools/compare.py, or give a job file")
    return build_job(raw, overrides)


def build_job(raw: dict[str, Any], overrides: list[str] = ()) -> JobConfig:
    """The job that ``raw`` (a job file's mapping; not modified) describes, after ``overrides``; checked."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    section = raw.pop("strategy", {})
    job = dataclasses.replace(build(JobConfig, raw, ""), strategy=strategy_section(section, "strategy"))
    validate(job)
    return job


def default_job() -> JobConfig:
    """The built-in default job (what ``python -m hpcfed.run`` runs without a job file)."""
    return build_job({})


def options_classes() -> dict[str, type[StrategyOptions]]:
    """Each method's options class, by name, in the registry's order."""
    return {name: strategy.Options for name, strategy in STRATEGIES.items()}


def options_class(name: str) -> type[StrategyOptions]:
    """The options class of method ``name``; an unknown name is a one-line error naming strategy.name."""
    classes = options_classes()
    if name not in classes:
        raise ConfigError(f"strategy.name = {name!r}: accepted {' | '.join(classes)}{did_you_mean(name, classes)}")
    return classes[name]


def strategy_section(raw: Any, key: str) -> StrategyConfig:
    """The section ``{name: X, X: {...}}`` at ``key``; a misplaced option is a one-line error."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping; got {raw!r}")
    name = convert(str, raw.get("name", DEFAULT_METHOD), f"{key}.name")
    options = options_class(name)
    for other in raw:
        if other not in ("name", name):
            raise ConfigError(_misplaced(key, other, raw[other], name))
    section = raw.get(name, {})
    if isinstance(section, dict):
        for option in section:
            if option not in _fields(options):
                raise ConfigError(_foreign_option(f"{key}.{name}.{option}", option, name))
    return StrategyConfig(name, build(options, section, f"{key}.{name}"))


def _fields(options: type[StrategyOptions]) -> list[str]:
    return [f.name for f in dataclasses.fields(options)]


def _owners(option: str) -> list[str]:
    """The methods that have an option called ``option``."""
    return [name for name, options in options_classes().items() if option in _fields(options)]


def _listing(name: str) -> str:
    """``superfed's options: distribution, ...`` (or that ``name`` has none)."""
    fields = _fields(options_class(name))
    return f"{name}'s options: {', '.join(fields)}" if fields else f"{name} has no options"


def _misplaced(key: str, other: str, value: Any, name: str) -> str:
    """The error for ``key.other``, a key beside ``name`` in the strategy section."""
    if other in options_classes():
        return (f"{key}.{other}: options of {other}, but the chosen method ({key}.name) is {name}; "
                f"{_listing(name)}")
    owners = _owners(other)
    if name in owners:
        rewrite = flow({"name": name, name: {other: value}})
        return (f"{key}.{other}: options go under the method's name; write {key}: {rewrite} "
                f"(or --set {key}.{name}.{other}={flow(value)})")
    if owners:
        return (f"{key}.{other}: an option of {', '.join(owners)}, but the chosen method ({key}.name) is {name}; "
                f"{_listing(name)}")
    return f"{key}.{other}: unknown key; accepted keys here: name, {name}"


def _foreign_option(path: str, option: str, name: str) -> str:
    """The error for ``option`` inside method ``name``'s section, which ``name`` does not have."""
    owners = _owners(option)
    if owners:
        return f"{path}: an option of {', '.join(owners)}, not of {name}; {_listing(name)}"
    fields = _fields(options_class(name))
    return f"{path}: unknown key; " + (f"accepted keys here: {', '.join(fields)}" if fields else
                                       f"{name} has no options")
