"""Analytic cost of a subnet: parameters, forward MACs and activation elements per sample.

Counts convolutions and the classifier (normalisation and additions are ignored: they are a few
percent of a ResNet's MACs); each block is counted by its space's kind (:data:`BLOCK_COUNTS`), as
the network runs it. Training MACs are taken as 3x the forward MACs per sample (forward, backward
to activations, backward to weights), the client cost ledger's convention. A spec's explicit
channel sets count with their sizes, so a dropout subnet (hpcfed.learning.dropout) costs what its kept
channels compute.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hpcfed.supernet.arch import Arch
from hpcfed.supernet.slicing import SubnetSpec, widths
from hpcfed.supernet.space import ResNetSpace

TRAIN_MACS_PER_FORWARD = 3


@dataclass(frozen=True)
class Cost:
    params: int              # elements of the subnet's parameters
    macs: int                # forward multiply-accumulates per sample
    activations: int         # output elements of every convolution per sample (training memory)

    @property
    def param_bytes(self) -> int:
        return 4 * self.params

    def train_macs(self, samples: int) -> int:
        return TRAIN_MACS_PER_FORWARD * self.macs * samples

    def train_memory_bytes(self, batch_size: int) -> int:
        """Weights, gradients and one optimiser buffer, plus stored activations of one batch."""
        return 4 * (3 * self.params + 2 * batch_size * self.activations)


def cost(space: ResNetSpace, arch: Arch | SubnetSpec) -> Cost:
    """Exact parameter count and analytic forward MACs of ``arch`` in ``space``; for a
    :class:`SubnetSpec`, with the channel counts of its explicit sets (hpcfed.supernet.slicing.widths)."""
    if isinstance(arch, SubnetSpec):
        sizes = widths(space, arch) if arch.channels else space.group_sizes(arch.arch)
        arch = arch.arch
    else:
        sizes = space.group_sizes(arch)
    return _counted(space, arch, tuple(sizes.items()))


@lru_cache(maxsize=4096)
def _counted(space: ResNetSpace, arch: Arch, group_sizes: tuple[tuple[str, int], ...]) -> Cost:
    """The count of :func:`cost` for an architecture whose groups have ``group_sizes`` channels."""
    sizes = dict(group_sizes)
    params = 0
    for meta in space.params():
        if not meta.active_in(arch):
            continue
        n = 1
        for dim, group in enumerate(meta.groups):
            n *= sizes[group] if group is not None else meta.shape[dim]
        if meta.kernel_sliced:
            k = arch.kernels[meta.block[0]][meta.block[1]]
            n = n // (meta.shape[-1] * meta.shape[-2]) * k * k
        params += n
    h, w = space.input_shape[1:]
    macs = sizes["stem"] * space.input_shape[0] * 9 * h * w
    acts = sizes["stem"] * h * w
    inp, block = sizes["stem"], BLOCK_COUNTS[space.kind]
    for s, (ho, wo) in enumerate(space.spatial_sizes()):
        out = sizes[f"s{s}"]
        for b in range(arch.depths[s]):
            m, a = block(sizes, s, b, arch.kernels[s][b], inp, out)
            macs, acts, inp = macs + m * ho * wo, acts + a * ho * wo, out
    macs += inp * space.num_classes
    return Cost(params=params, macs=macs, activations=acts)


def _basic_block(sizes: dict[str, int], s: int, b: int, k: int, inp: int, out: int) -> tuple[int, int]:
    """MACs and conv output elements per output position of a ResNet block: two KxK convs (+ 1x1 down)."""
    mid = sizes[f"s{s}b{b}"]
    macs, acts = mid * inp * k * k + out * mid * k * k, mid + out
    return (macs + out * inp, acts + out) if b == 0 else (macs, acts)


def _separable_block(sizes: dict[str, int], s: int, b: int, k: int, inp: int, out: int) -> tuple[int, int]:
    """The same for a MobileNet block: depthwise KxK (inp x k x k), then pointwise 1x1 (out x inp)."""
    return inp * k * k + out * inp, inp + out


BLOCK_COUNTS = {"resnet": _basic_block, "mobilenet": _separable_block}   # space.kind -> its block's counts
