"""Architectures of the elastic spaces as frozen, hashable values.

An :class:`Arch` names one subnet of the supernet: how many of each stage's blocks are active
(elastic depth keeps the *first* blocks, as in Once-for-All and SuperFed), the middle-width expand
ratio and the kernel size of every active block, and a width multiplier for the stem and stage
outputs (HeteroFL's width tiers). In the MobileNet space an expand is the stage's channel ratio
instead, one equal value per active block (hpcfed.supernet.mobilenet). It round-trips through
plain dicts, hence YAML and HDF5.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hpcfed.errors import ConfigError

_NUMBER = r"[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?"
_NAME = re.compile(rf"d(?P<d>[0-9]+(?:,[0-9]+)*)-e(?P<e>{_NUMBER}(?:,{_NUMBER})*)"
                   rf"-k(?P<k>[0-9]+(?:,[0-9]+)*)-w(?P<w>{_NUMBER})")


@dataclass(frozen=True)
class Arch:
    """One subnet: active depth per stage, expand ratio and kernel per active block, width."""

    depths: tuple[int, ...]
    expands: tuple[tuple[float, ...], ...]
    kernels: tuple[tuple[int, ...], ...]
    width: float = 1.0

    def __post_init__(self) -> None:
        if len(self.expands) != len(self.depths) or len(self.kernels) != len(self.depths):
            raise ConfigError(f"arch: depths {self.depths}, expands {self.expands} and kernels "
                              f"{self.kernels} must describe the same number of stages")
        for s, d in enumerate(self.depths):
            if len(self.expands[s]) != d or len(self.kernels[s]) != d:
                raise ConfigError(f"arch: stage {s} has depth {d} but expands {self.expands[s]} and "
                                  f"kernels {self.kernels[s]}; give one value per active block")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for YAML and JSON."""
        return {"depths": list(self.depths), "expands": [list(e) for e in self.expands],
                "kernels": [list(k) for k in self.kernels], "width": self.width}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Arch":
        """Inverse of :meth:`to_dict`; rejects missing or unknown keys."""
        if not isinstance(d, dict):
            raise ConfigError(f"arch: expected a mapping with depths, expands, kernels, width; got {d!r}")
        unknown = set(d) - {"depths", "expands", "kernels", "width"}
        if unknown:
            raise ConfigError(f"arch: unknown key(s) {sorted(unknown)}; accepted: depths, expands, kernels, width")
        try:
            return cls(depths=tuple(int(x) for x in d["depths"]),
                       expands=tuple(tuple(float(x) for x in e) for e in d["expands"]),
                       kernels=tuple(tuple(int(x) for x in k) for k in d["kernels"]),
                       width=float(d.get("width", 1.0)))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"arch: {d!r} is not a valid architecture ({err}); "
                              "expected depths, expands, kernels lists and a width") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Arch":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_name(cls, name: str) -> "Arch":
        """Inverse of :attr:`name` (``d2,1-e.25,.5,1-k3,3,5-w1``): depth per stage, then the expands
        and kernels of the active blocks in stage order, then the width."""
        match = _NAME.fullmatch(name.strip())
        try:
            if match is None:
                raise ValueError("not of the form d<depths>-e<expands>-k<kernels>-w<width>")
            depths = [int(d) for d in match["d"].split(",")]
            expands = [float(e) for e in match["e"].split(",")]
            kernels = [int(k) for k in match["k"].split(",")]
            if sum(depths) != len(expands) or sum(depths) != len(kernels):
                raise ValueError(f"{sum(depths)} active blocks but {len(expands)} expands and {len(kernels)} kernels")
            starts = [sum(depths[:s]) for s in range(len(depths))]
            return cls(tuple(depths), tuple(tuple(expands[a:a + d]) for a, d in zip(starts, depths)),
                       tuple(tuple(kernels[a:a + d]) for a, d in zip(starts, depths)), float(match["w"]))
        except ValueError as err:
            raise ConfigError(f"arch name {name!r}: {err}; expected d<depth per stage>-e<expand per active "
                              "block>-k<kernel per active block>-w<width>, e.g. d2,1-e.25,.5,1-k3,3,5-w1") from None

    @property
    def name(self) -> str:
        """A short human-readable label, e.g. ``d2,1-e.25,.5,1-k3,3,5-w1``."""
        fmt = lambda v: f"{v:g}".lstrip("0") if v < 1 else f"{v:g}"  # noqa: E731
        depths = ",".join(str(d) for d in self.depths)
        expands = ",".join(fmt(e) for stage in self.expands for e in stage)
        kernels = ",".join(str(k) for stage in self.kernels for k in stage)
        return f"d{depths}-e{expands}-k{kernels}-w{fmt(self.width)}"
