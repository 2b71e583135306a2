"""Architectures named in a method's options: ``largest``, ``smallest``, ``ref<i>`` (the i-th reference
subnet) or an architecture's own name (``Arch.name``, e.g. a search's choice), for FedAvg, iFedAvg and
FedNAS's start.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hpcfed.config.checks import check
from hpcfed.errors import ConfigError
from hpcfed.supernet import Arch

if TYPE_CHECKING:
    from hpcfed.strategies.base import Strategy


def check_arch_name(name: str, key: str, job) -> None:
    """``name`` must be largest | smallest | ref<i> with i below ``eval.subnets``, or an architecture
    name (Arch.name, e.g. a search's choice; checked against the space when the strategy is built)."""
    n = job.eval.subnets
    named = name in ("largest", "smallest") or (name.startswith("ref") and name[3:].isdigit() and int(name[3:]) < n)
    if not named and name[:1] == "d":
        try:
            Arch.from_name(name)
            named = True
        except ConfigError:
            pass
    check(named, key, name, f"largest | smallest | ref0..ref{n - 1} | an architecture name such as d2,1-e.25,.5,1-k3,3,3-w1")


def named_arch(strategy: Strategy, name: str) -> Arch:
    """The architecture ``name`` (largest | smallest | ref<i>, the i-th reference subnet, or an
    architecture name of the space) names."""
    if name[:1] == "d":
        try:
            return strategy.space.named(name)
        except ConfigError as err:
            raise ConfigError(f"strategy.{strategy.name}: {err}") from None
    if name == "largest":
        return strategy.space.largest()
    if name == "smallest":
        return strategy.space.smallest()
    references = strategy.space.references(strategy.job.eval.subnets)
    if int(name[3:]) >= len(references):
        raise ConfigError(f"strategy.{strategy.name}: architecture {name!r}: this space has {len(references)} distinct "
                          f"reference subnets for eval.subnets = {strategy.job.eval.subnets} (ref0..ref{len(references) - 1});"
                          f" give more model choices or fewer eval.subnets")
    return references[int(name[3:])]
