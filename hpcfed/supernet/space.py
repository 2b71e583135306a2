"""The elastic ResNet search space: which architectures exist and how big each part is.

Follows SuperFed's OFA-ResNet space (stem, stages of residual blocks with two KxK convolutions
and an elastic middle width), scaled by the job so that tests and the default job stay small.
The space is pure metadata: it samples and validates :class:`Arch` values, gives the channel count
of every *channel group* under an architecture, and lists the supernet's parameters with the
group that indexes each of their dimensions. Slicing, extraction and cost counting build on that;
:class:`hpcfed.supernet.mobilenet.MobileNetSpace` reuses it with other blocks.

Channel groups: ``stem`` (stem output), ``s{i}`` (output of stage i, shared by its blocks because
of the residual sums) and ``s{i}b{j}`` (middle width of block j of stage i).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hpcfed.errors import ConfigError
from hpcfed.supernet.arch import Arch
from hpcfed.supernet.norm import NORM_PARAMS


@dataclass(frozen=True)
class ParamMeta:
    """One supernet parameter: its full shape and, per dimension, the channel group indexing it."""

    name: str
    shape: tuple[int, ...]
    groups: tuple[str | None, ...]
    block: tuple[int, int] | None = None   # (stage, block) owning it; None = always active
    kernel_sliced: bool = False            # last two dims are a KxK kernel cropped to the block's kernel

    def active_in(self, arch: Arch) -> bool:
        """Whether a subnet with ``arch`` uses this parameter (elastic depth drops later blocks)."""
        return self.block is None or self.block[1] < arch.depths[self.block[0]]


def make_divisible(value: float, divisor: int, limit: int) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least one divisor, at most ``limit``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return min(rounded, limit)


@dataclass(frozen=True)
class ResNetSpace:
    """An OFA/SuperFed-style elastic ResNet space for inputs of shape ``input_shape`` (C, H, W)."""

    kind: ClassVar[str] = "resnet"     # model.space; the network and the cost count dispatch on it

    input_shape: tuple[int, int, int]
    num_classes: int
    stem: int = 16
    widths: tuple[int, ...] = (32, 64)
    depths: tuple[int, ...] = (2, 2)
    strides: tuple[int, ...] = (1, 2)
    expand_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    kernel_choices: tuple[int, ...] = (3,)
    width_choices: tuple[float, ...] = (1.0,)
    divisor: int = 4
    norm: str = "bn"

    # --- architectures -------------------------------------------------------------------------
    def largest(self) -> Arch:
        return self._uniform(len(self.expand_choices) - 1, len(self.kernel_choices) - 1, max(self.width_choices))

    def smallest(self) -> Arch:
        return self._uniform(0, 0, min(self.width_choices), depth=1)

    def _uniform(self, e: int, k: int, width: float, depth: int | None = None) -> Arch:
        depths = tuple(depth or d for d in self.depths)
        ordered_e, ordered_k = sorted(self.expand_choices), sorted(self.kernel_choices)
        return Arch(depths, tuple((ordered_e[e],) * d for d in depths),
                    tuple((ordered_k[k],) * d for d in depths), width)

    def references(self, count: int) -> list[Arch]:
        """``count`` architectures from the smallest to the largest, evenly spaced in choice index."""
        if count < 2:
            raise ConfigError(f"eval.subnets: {count} reference subnets; need at least 2 (smallest and largest)")
        es, ks, ws = sorted(self.expand_choices), sorted(self.kernel_choices), sorted(self.width_choices)
        archs: list[Arch] = []
        for t in np.linspace(0.0, 1.0, count):
            depths = tuple(int(round(1 + t * (d - 1))) for d in self.depths)
            e, k = es[int(round(t * (len(es) - 1)))], ks[int(round(t * (len(ks) - 1)))]
            archs.append(Arch(depths, tuple((e,) * d for d in depths), tuple((k,) * d for d in depths),
                              ws[int(round(t * (len(ws) - 1)))]))
        return list(dict.fromkeys(archs))

    def named(self, name: str) -> Arch:
        """The architecture of this space whose :attr:`Arch.name` is ``name``: its rounded numbers are
        read as the space's choices (``.333333`` as 1/3); one-line ConfigError if it is not in the space."""
        def same(value: float, choices) -> float:
            return next((float(c) for c in choices if f"{c:g}" == f"{value:g}"), value)
        arch = Arch.from_name(name)
        arch = Arch(arch.depths, tuple(tuple(same(e, self.expand_choices) for e in s) for s in arch.expands),
                    arch.kernels, same(arch.width, self.width_choices))
        return self.validate(arch)

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture: depth per stage, then expand and kernel per block."""
        depths = tuple(int(rng.integers(1, d + 1)) for d in self.depths)
        expands = tuple(tuple(float(self.expand_choices[i]) for i in rng.integers(0, len(self.expand_choices), d))
                        for d in depths)
        kernels = tuple(tuple(int(self.kernel_choices[i]) for i in rng.integers(0, len(self.kernel_choices), d))
                        for d in depths)
        return Arch(depths, expands, kernels, float(self.width_choices[int(rng.integers(len(self.width_choices)))]))

    def sample_within(self, bound: Arch, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture inside ``bound``: depth per stage up to the bound's, then
        per block an expand and a kernel, and a width, each up to the bound's (prefix slicing makes
        its slice part of the bound's). The random subnets of a client's sandwich rule (FedSup)."""
        def pick(choices, limit):
            allowed = sorted(c for c in choices if c <= limit)
            return allowed[int(rng.integers(len(allowed)))]
        depths = tuple(int(rng.integers(1, d + 1)) for d in bound.depths)
        expands = self._expands_within(bound, depths, pick)
        kernels = tuple(tuple(int(pick(self.kernel_choices, bound.kernels[s][b])) for b in range(d))
                        for s, d in enumerate(depths))
        return Arch(depths, expands, kernels, float(pick(self.width_choices, bound.width)))

    def _expands_within(self, bound: Arch, depths: tuple[int, ...], pick) -> tuple[tuple[float, ...], ...]:
        """Per active block an expand up to the bound's (``pick(choices, limit)`` draws one)."""
        return tuple(tuple(float(pick(self.expand_choices, bound.expands[s][b])) for b in range(d))
                     for s, d in enumerate(depths))

    @staticmethod
    def contains(bound: Arch, arch: Arch) -> bool:
        """Whether every choice of ``arch`` is at most ``bound``'s (so its slice lies in ``bound``'s)."""
        return (arch.width <= bound.width and len(arch.depths) == len(bound.depths)
                and all(d <= bd and all(e <= be for e, be in zip(es, bes)) and all(k <= bk for k, bk in zip(ks, bks))
                        for d, bd, es, bes, ks, bks in zip(arch.depths, bound.depths, arch.expands, bound.expands,
                                                           arch.kernels, bound.kernels)))

    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` if it belongs to this space, else raise one line naming the bad part."""
        if len(arch.depths) != len(self.depths):
            raise ConfigError(f"arch {arch.name}: {len(arch.depths)} stages; this space has {len(self.depths)}")
        for s, d in enumerate(arch.depths):
            if not 1 <= d <= self.depths[s]:
                raise ConfigError(f"arch {arch.name}: stage {s} depth {d}; accepted 1..{self.depths[s]}")
            for e in arch.expands[s]:
                if e not in self.expand_choices:
                    raise ConfigError(f"arch {arch.name}: expand {e}; accepted {list(self.expand_choices)}")
            for k in arch.kernels[s]:
                if k not in self.kernel_choices:
                    raise ConfigError(f"arch {arch.name}: kernel {k}; accepted {list(self.kernel_choices)}")
        if arch.width not in self.width_choices:
            raise ConfigError(f"arch {arch.name}: width {arch.width}; accepted {list(self.width_choices)}")
        return arch

    # --- channel groups and parameters ---------------------------------------------------------
    @property
    def max_kernel(self) -> int:
        return max(self.kernel_choices)

    def group_sizes(self, arch: Arch) -> dict[str, int]:
        """Active channel count of every group under ``arch`` (inactive blocks are absent)."""
        sizes = {"stem": make_divisible(self.stem * arch.width, self.divisor, self.stem)}
        for s, full in enumerate(self.widths):
            out = make_divisible(full * arch.width, self.divisor, full)
            sizes[f"s{s}"] = out
            for b in range(arch.depths[s]):
                sizes[f"s{s}b{b}"] = make_divisible(out * arch.expands[s][b], self.divisor, self.mid_width(s))
        return sizes

    def mid_width(self, stage: int) -> int:
        """The largest middle width of a block in ``stage`` (its stage width times the largest expand)."""
        full = self.widths[stage]
        return make_divisible(full * max(self.expand_choices), self.divisor, 1 << 30)

    def max_group_sizes(self) -> dict[str, int]:
        sizes = {"stem": self.stem}
        for s, full in enumerate(self.widths):
            sizes[f"s{s}"] = full
            sizes.update({f"s{s}b{b}": self.mid_width(s) for b in range(self.depths[s])})
        return sizes

    def params(self) -> list[ParamMeta]:
        """The supernet's parameters in storage order (the order of the flat weight buffer)."""
        metas = [ParamMeta("stem.conv", (self.stem, self.input_shape[0], 3, 3), ("stem", None, None, None))]
        metas += self._norm_params("stem.norm", "stem", self.stem, None)
        for s, depth in enumerate(self.depths):
            for b in range(depth):
                metas += self._block_params(s, b)
        last = f"s{len(self.widths) - 1}"
        metas.append(ParamMeta("head.weight", (self.num_classes, self.widths[-1]), (None, last)))
        metas.append(ParamMeta("head.bias", (self.num_classes,), (None,)))
        return metas

    def _block_params(self, s: int, b: int) -> list[ParamMeta]:
        """Block b of stage s: KxK conv1 (stride on b = 0), KxK conv2, and a 1x1 downsample on b = 0."""
        block, inp, mid, out = (s, b), self._block_input(s, b), f"s{s}b{b}", f"s{s}"
        k, width, mid_width = self.max_kernel, self.widths[s], self.mid_width(s)
        in_width = self._block_input_width(s, b)
        prefix = f"stage{s}.block{b}"
        metas = [ParamMeta(f"{prefix}.conv1", (mid_width, in_width, k, k), (mid, inp, None, None), block, True)]
        metas += self._norm_params(f"{prefix}.norm1", mid, mid_width, block)
        metas.append(ParamMeta(f"{prefix}.conv2", (width, mid_width, k, k), (out, mid, None, None), block, True))
        metas += self._norm_params(f"{prefix}.norm2", out, width, block)
        if b == 0:
            metas.append(ParamMeta(f"{prefix}.down", (width, in_width, 1, 1), (out, inp, None, None), block))
            metas += self._norm_params(f"{prefix}.down_norm", out, width, block)
        return metas

    def _norm_params(self, prefix: str, group: str, width: int, block) -> list[ParamMeta]:
        return [ParamMeta(f"{prefix}.{p}", (width,), (group,), block) for p in NORM_PARAMS[self.norm]]

    def _block_input(self, s: int, b: int) -> str:
        return f"s{s}" if b > 0 else ("stem" if s == 0 else f"s{s - 1}")

    def _block_input_width(self, s: int, b: int) -> int:
        return self.widths[s] if b > 0 else (self.stem if s == 0 else self.widths[s - 1])

    def spatial_sizes(self) -> list[tuple[int, int]]:
        """(H, W) of each stage's output for the space's input size."""
        h, w = self.input_shape[1:]
        sizes = []
        for stride in self.strides:
            h, w = math.floor((h - 1) / stride) + 1, math.floor((w - 1) / stride) + 1
            sizes.append((h, w))
        return sizes
