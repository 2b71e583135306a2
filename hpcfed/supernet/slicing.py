"""Subnet specifications and the one slicing function used for weights, extraction and masks.

A :class:`SubnetSpec` is an :class:`Arch` plus, optionally, an explicit channel index set for any
channel group; groups without one take the *prefix* (first c channels, as in OFA and SuperFed).
Explicit sets carry rolling windows (FedRolex) and random filter subsets (Federated Dropout,
DISTREAL); a set may be smaller than the arch's width of its group, and its size then is the
group's width (:func:`widths`). :func:`slice_param` cuts one parameter to a spec; applied to an
``arange`` of the flat buffer it gives the subnet's element indices, so masks, extraction and
merging always agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

from hpcfed.errors import ConfigError
from hpcfed.supernet.arch import Arch
from hpcfed.supernet.space import ParamMeta, ResNetSpace

Selection = Union[int, torch.Tensor]   # a prefix length, or sorted channel indices (int64)


@dataclass(frozen=True)
class SubnetSpec:
    """One slice of the supernet: an architecture and explicit channel sets for some groups."""

    arch: Arch
    channels: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def of(cls, arch: Arch, channels: dict[str, tuple[int, ...]] | None = None) -> "SubnetSpec":
        """Build a spec with channel sets given as a dict (stored sorted, hashable)."""
        items = tuple(sorted((g, tuple(sorted(int(i) for i in idx))) for g, idx in (channels or {}).items()))
        return cls(arch, items)

    @property
    def is_prefix(self) -> bool:
        return not self.channels


def selections(space: ResNetSpace, spec: SubnetSpec) -> dict[str, Selection]:
    """Channel selection of every active group: an int for a prefix, an index tensor otherwise.

    An explicit set holds 1 to the arch's group size distinct channels of the full group; its size
    is the group's width in this subnet (a set smaller than the arch's width drops channels, as
    DISTREAL's per-layer filter dropout does, hpcfed.learning.dropout)."""
    sizes = space.group_sizes(spec.arch)
    full = space.max_group_sizes()
    sel: dict[str, Selection] = dict(sizes)
    for group, idx in spec.channels:
        if group not in sizes:
            raise ConfigError(f"subnet spec: channel group {group!r} is not active in {spec.arch.name}; "
                              f"active groups: {sorted(sizes)}")
        if not (1 <= len(idx) <= sizes[group] and 0 <= idx[0] and idx[-1] < full[group]) or len(set(idx)) != len(idx):
            raise ConfigError(f"subnet spec: group {group!r} needs 1 to {sizes[group]} distinct channels in "
                              f"0..{full[group] - 1}; got {len(idx)}")
        sel[group] = torch.tensor(idx, dtype=torch.int64)
    return sel


def widths(space: ResNetSpace, spec: SubnetSpec) -> dict[str, int]:
    """Channel count of every active group in ``spec``: the arch's, or the size of the group's explicit set."""
    sizes = space.group_sizes(spec.arch)
    sizes.update((group, len(idx)) for group, idx in spec.channels if group in sizes)
    return sizes


def slice_param(tensor: torch.Tensor, meta: ParamMeta, sel: dict[str, Selection], arch: Arch) -> torch.Tensor:
    """Cut ``tensor`` (a full supernet parameter, or anything of its shape) to the subnet's slice."""
    for dim, group in enumerate(meta.groups):
        if group is None:
            continue
        s = sel[group]
        if isinstance(s, torch.Tensor):
            tensor = tensor.index_select(dim, s)
        elif s < tensor.shape[dim]:      # a full prefix is the tensor itself (no copy in backward)
            tensor = tensor.narrow(dim, 0, s)
    if meta.kernel_sliced:
        stage, block = meta.block
        k, full = arch.kernels[stage][block], tensor.shape[-1]
        if k < full:
            o = (full - k) // 2
            tensor = tensor[..., o:o + k, o:o + k]   # centre crop of the largest kernel (OFA)
    return tensor
