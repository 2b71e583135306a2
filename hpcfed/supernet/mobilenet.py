"""The elastic MobileNet-V1-style space: depthwise-separable blocks with per-stage channels.

Follows the space of FedSup's reference code (Kim et al., 2022), built on MobileNet-V1 (Howard et
al., 2017): a 3x3 stem, then stages of blocks "depthwise KxK conv (stride on a stage's first
block) -> norm -> ReLU -> pointwise 1x1 conv -> norm", a residual shortcut ``h + y`` on every block
but a stage's first (whose input has another channel group; MobileNet-V1 has no shortcuts at all),
then ReLU; global average pool and a linear head. Elastic: depth per stage (the first blocks stay),
kernel 3/5/7 per block as the centre crop of the largest kernel (OFA), the stage's channel count.

In this space ``Arch.expands[s]`` holds stage s's **channel ratio**, the same value once per active
block: the residual sums tie all of a stage's blocks to one channel group, so the stage has one
ratio (:meth:`validate` rejects unequal ones). The stage then has ``widths[s] x width x ratio``
channels, rounded to ``divisor``.

Channel groups: ``stem`` (stem output) and ``s{i}`` (output of stage i, shared by its blocks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hpcfed.errors import ConfigError
from hpcfed.supernet.arch import Arch
from hpcfed.supernet.space import ParamMeta, ResNetSpace, make_divisible


@dataclass(frozen=True)
class MobileNetSpace(ResNetSpace):
    """A MobileNet-V1-style elastic space; same fields as :class:`ResNetSpace`, expands are stage ratios."""

    kind: ClassVar[str] = "mobilenet"

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture: depth and channel ratio per stage, kernel per block, width."""
        depths = tuple(int(rng.integers(1, d + 1)) for d in self.depths)
        ratios = [float(self.expand_choices[i]) for i in rng.integers(0, len(self.expand_choices), len(depths))]
        kernels = tuple(tuple(int(self.kernel_choices[i]) for i in rng.integers(0, len(self.kernel_choices), d))
                        for d in depths)
        width = float(self.width_choices[int(rng.integers(len(self.width_choices)))])
        return Arch(depths, tuple((r,) * d for r, d in zip(ratios, depths)), kernels, width)

    def _expands_within(self, bound, depths, pick):
        """One channel ratio per stage, up to the bound's."""
        return tuple((float(pick(self.expand_choices, bound.expands[s][0])),) * d for s, d in enumerate(depths))

    def validate(self, arch: Arch) -> Arch:
        super().validate(arch)
        for s, ratios in enumerate(arch.expands):
            if len(set(ratios)) > 1:
                raise ConfigError(f"arch {arch.name}: stage {s} expands {list(ratios)}; in the mobilenet space "
                                  "expands are the stage's channel ratio, one equal value per active block")
        return arch

    def group_sizes(self, arch: Arch) -> dict[str, int]:
        sizes = {"stem": make_divisible(self.stem * arch.width, self.divisor, self.stem)}
        for s, full in enumerate(self.widths):
            sizes[f"s{s}"] = make_divisible(full * arch.width * arch.expands[s][0], self.divisor, full)
        return sizes

    def max_group_sizes(self) -> dict[str, int]:
        return {"stem": self.stem, **{f"s{s}": full for s, full in enumerate(self.widths)}}

    def _block_params(self, s: int, b: int) -> list[ParamMeta]:
        """Block b of stage s: depthwise KxK conv (C_in, 1, K, K), then pointwise 1x1 conv (C_out, C_in)."""
        block, inp, out = (s, b), self._block_input(s, b), f"s{s}"
        k, width, in_width = self.max_kernel, self.widths[s], self._block_input_width(s, b)
        prefix = f"stage{s}.block{b}"
        metas = [ParamMeta(f"{prefix}.dw", (in_width, 1, k, k), (inp, None, None, None), block, True)]
        metas += self._norm_params(f"{prefix}.dw_norm", inp, in_width, block)
        metas.append(ParamMeta(f"{prefix}.pw", (width, in_width, 1, 1), (out, inp, None, None), block))
        metas += self._norm_params(f"{prefix}.pw_norm", out, width, block)
        return metas
