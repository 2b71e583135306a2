"""The job's ``strategy`` section: the method's name and that method's own options.

Each strategy declares its options as a frozen dataclass, ``Options``, in its own module
(hpcfed/strategies/). A job names them under the method::

    strategy: {name: superfed, superfed: {beta0: 0.9, weighting: maxnet}}
    --set strategy.efedsup.tiers=fixed4

The options classes are found through the strategy registry, imported when first needed: the
strategies import hpcfed.config, so this module must not import them when it loads.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpcfed.config_parse import build, convert, flow, to_mapping
from hpcfed.errors import ConfigError

if TYPE_CHECKING:
    from hpcfed.strategies.base import StrategyOptions

DEFAULT_METHOD = "superfed"


def options_classes() -> dict[str, type[StrategyOptions]]:
    """Each method's options class, by name, in the registry's order."""
    from hpcfed.strategies import STRATEGIES   # noqa: PLC0415 (import cycle: the strategies import hpcfed.config)
    return {name: strategy.Options for name, strategy in STRATEGIES.items()}


def options_class(name: str) -> type[StrategyOptions]:
    """The options class of method ``name``; an unknown name is a one-line error naming strategy.name."""
    classes = options_classes()
    if name not in classes:
        raise ConfigError(f"strategy.name = {name!r}: accepted {' | '.join(classes)}")
    return classes[name]


@dataclass(frozen=True)
class StrategyConfig:
    """The method and its options; ``options`` None (the default) means the method's defaults."""

    name: str = DEFAULT_METHOD   # a name of hpcfed.strategies.STRATEGIES (superfed, fedavg, ifedavg, ...)
    options: StrategyOptions = None   # type: ignore[assignment]  # an instance of the method's Options

    def __post_init__(self):
        expected = options_class(self.name)
        if self.options is None:
            object.__setattr__(self, "options", expected())
        elif type(self.options) is not expected:
            raise TypeError(f"strategy {self.name!r} takes {expected.__name__}, not {type(self.options).__name__}")

    @classmethod
    def from_mapping(cls, raw: Any, key: str) -> StrategyConfig:
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
        return cls(name, build(options, section, f"{key}.{name}"))

    def to_mapping(self) -> dict[str, Any]:
        """``{name: X, X: {...}}``: only the chosen method's options."""
        return {"name": self.name, self.name: to_mapping(self.options)}


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
