"""The elastic supernet of any space, its forward pass under a spec, and exact subnet extraction.

The supernet owns the largest parameters, all views into one flat float32 buffer (so loading,
shipping and aggregating weights is a copy of one tensor). ``forward(x, spec)`` slices the
parameters to the spec (Once-for-All's ``get_active_weight``) and runs the shared functional
network (:func:`network_forward`: stem, the space's blocks, head); ``extract(spec)`` copies the
slices into a standalone :class:`Subnet` that runs the same function on plain parameters;
``merge(spec, subnet)`` writes a subnet's weights back. The active architecture is always an
argument, never state on the modules.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from hpcfed.supernet.arch import Arch
from hpcfed.supernet.norm import NORM_INIT, NORM_PARAMS, NormStatistics, normalize
from hpcfed.supernet.slicing import SubnetSpec, selections, slice_param
from hpcfed.supernet.space import ResNetSpace


def network_forward(p: dict[str, torch.Tensor], space: ResNetSpace, arch: Arch, x: torch.Tensor,
                    scale: float = 1.0, groups: int = 1, statistics: NormStatistics | None = None) -> torch.Tensor:
    """Logits of the network with (already sliced) parameters ``p`` on ``x`` (B, C, H, W).

    Stem, the space's blocks (:data:`BLOCKS`, by ``space.kind``), global average pool, linear head.
    ``scale`` multiplies every convolution output (HeteroFL's training-time scaler 1/r).
    ``groups`` > 1 runs that many independent copies at once (hpcfed.learning.batched): every parameter
    carries a leading copy dimension, ``x`` holds the copies' inputs side by side in its channels
    (B, groups x C, H, W), convolutions are grouped, and the logits come back as (B, groups, classes).
    ``statistics`` collects or applies calibrated normalisation statistics (hpcfed.supernet.norm).
    """
    layers = _Layers(p, space.norm, scale, groups, statistics)
    block = BLOCKS[space.kind]
    h = F.relu(layers.norm(layers.conv(x, "stem.conv"), "stem.norm"))      # (B, stem, H, W)
    for s, stride in enumerate(space.strides):
        for b in range(arch.depths[s]):
            h = block(layers, f"stage{s}.block{b}", h, stride if b == 0 else 1, b == 0)   # (B, out, H', W')
    h = h.mean(dim=(2, 3))                                                  # (B, groups x out)
    if groups == 1:
        return F.linear(h, p["head.weight"], p["head.bias"])                # (B, classes)
    h = h.view(len(h), groups, -1)                                          # (B, groups, out)
    return torch.einsum("bgc,goc->bgo", h, p["head.weight"]) + p["head.bias"]   # (B, groups, classes)


class _Layers:
    """Convolution and normalisation by parameter name, for one network or ``groups`` stacked copies."""

    def __init__(self, p: dict[str, torch.Tensor], norm: str, scale: float, groups: int,
                 statistics: NormStatistics | None = None):
        self.p, self.norm_kind, self.scale, self.groups, self.statistics = p, norm, scale, groups, statistics

    def conv(self, h: torch.Tensor, name: str, stride: int = 1, depthwise: bool = False) -> torch.Tensor:
        w = self.p[name]
        w = w.reshape(-1, *w.shape[-3:])                       # copies stacked on out-channels
        groups = len(w) if depthwise else self.groups          # depthwise: every (copy's) channel alone
        if stride > 1 and w.shape[-1] == 1 and h.device.type == "cpu" and 1 < h.shape[1] // groups < 8 \
                and not h.is_contiguous():
            h = h.contiguous()   # torch 2.13's CPU kernels corrupt the heap on a strided 1x1 convolution of
                                 # channels-last input with 2-6 channels (tests/supernet/test_channels_last.py)
        out = F.conv2d(h, w, stride=stride, padding=w.shape[-1] // 2, groups=groups)
        return out * self.scale if self.scale != 1.0 else out

    def norm(self, h: torch.Tensor, prefix: str) -> torch.Tensor:
        params = [self.p[f"{prefix}.{q}"].reshape(-1) for q in NORM_PARAMS[self.norm_kind]]
        return normalize(self.norm_kind, h, params, self.groups, prefix, self.statistics)


def _basic_block(layers: _Layers, pre: str, h: torch.Tensor, stride: int, first: bool) -> torch.Tensor:
    """ResNet basic block (He et al., 2016): two KxK convs, a 1x1 downsample shortcut on a stage's first."""
    y = F.relu(layers.norm(layers.conv(h, f"{pre}.conv1", stride), f"{pre}.norm1"))   # (B, mid, H', W')
    y = layers.norm(layers.conv(y, f"{pre}.conv2"), f"{pre}.norm2")                   # (B, out, H', W')
    shortcut = layers.norm(layers.conv(h, f"{pre}.down", stride), f"{pre}.down_norm") if first else h
    return F.relu(y + shortcut)


def _separable_block(layers: _Layers, pre: str, h: torch.Tensor, stride: int, first: bool) -> torch.Tensor:
    """Depthwise-separable block (MobileNet-V1), with an identity shortcut where the channels allow it."""
    y = F.relu(layers.norm(layers.conv(h, f"{pre}.dw", stride, depthwise=True), f"{pre}.dw_norm"))  # (B, in, H', W')
    y = layers.norm(layers.conv(y, f"{pre}.pw"), f"{pre}.pw_norm")                                  # (B, out, H', W')
    return F.relu(y if first else y + h)


BLOCKS = {"resnet": _basic_block, "mobilenet": _separable_block}   # space.kind -> its block's forward


class ElasticResNet(nn.Module):
    """The weight-shared supernet of any space (ResNet or MobileNet); parameters are views of ``self.flat``.

    The name is historical: the network's blocks are those of ``space.kind`` (:data:`BLOCKS`).
    """

    def __init__(self, space: ResNetSpace, generator: torch.Generator | None = None):
        super().__init__()
        self.space = space
        self.metas = space.params()
        self.offsets = [0]
        for meta in self.metas:
            self.offsets.append(self.offsets[-1] + _numel(meta.shape))
        self.register_buffer("flat", torch.zeros(self.offsets[-1]), persistent=False)
        self.weights = nn.ParameterList(
            nn.Parameter(self.flat[a:b].view(m.shape)) for m, a, b in zip(self.metas, self.offsets, self.offsets[1:]))
        self.names = [m.name for m in self.metas]
        self._params = tuple(self.weights)    # plain tuple: indexing a ParameterList costs a string key per call
        self._index_cache: OrderedDict[SubnetSpec, torch.Tensor] = OrderedDict()
        self._plan_cache: OrderedDict[SubnetSpec, list] = OrderedDict()
        self.reset_parameters(generator)

    @property
    def num_params(self) -> int:
        return self.offsets[-1]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-normal (fan-out) convolutions, small-normal head, norms at identity."""
        for meta, w in zip(self.metas, self.weights):
            leaf = meta.name.rsplit(".", 1)[-1]
            if leaf in NORM_INIT and w.dim() == 1 and not meta.name.startswith("head"):
                w.fill_(NORM_INIT[leaf])
            elif meta.name == "head.bias":
                w.zero_()
            elif meta.name == "head.weight":
                w.normal_(0.0, 0.01, generator=generator)
            else:
                fed = 1 if meta.name.endswith(".dw") else w.shape[0]   # output channels an input channel feeds
                fan_out = fed * w.shape[2] * w.shape[3]
                w.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)

    def sliced(self, spec: SubnetSpec) -> dict[str, torch.Tensor]:
        """The active parameters cut to ``spec`` (differentiable views or gathers)."""
        return {m.name: slice_param(self._params[i], m, sel, spec.arch) for i, m, sel in self._slicing(spec)}

    def _slicing(self, spec: SubnetSpec) -> list:
        """(parameter position, meta, channel selections) of every active parameter, cached per spec."""
        plan = self._plan_cache.get(spec)
        if plan is None:
            sel = {g: s.to(self.flat.device) if isinstance(s, torch.Tensor) else s
                   for g, s in selections(self.space, spec).items()}
            plan = [(i, m, sel) for i, m in enumerate(self.metas) if m.active_in(spec.arch)]
            _remember(self._plan_cache, spec, plan)
        return plan

    def forward(self, x: torch.Tensor, spec: SubnetSpec, scale: float = 1.0,
                statistics: NormStatistics | None = None) -> torch.Tensor:
        return network_forward(self.sliced(spec), self.space, spec.arch, x, scale, statistics=statistics)

    def flat_index(self, spec: SubnetSpec) -> torch.Tensor:
        """Positions in ``self.flat`` of the subnet's elements, in its storage order: strictly ascending (int64)."""
        cached = self._index_cache.get(spec)
        if cached is not None:
            return cached
        sel = selections(self.space, spec)
        parts = [slice_param(torch.arange(a, b).view(m.shape), m, sel, spec.arch).reshape(-1)
                 for m, a, b in zip(self.metas, self.offsets, self.offsets[1:]) if m.active_in(spec.arch)]
        return _remember(self._index_cache, spec, torch.cat(parts), INDEX_CACHE_BYTES)

    def union_index(self, specs) -> torch.Tensor:
        """Ascending flat positions covered by any of ``specs`` (what a worker hosting them needs)."""
        distinct = set(specs)
        if len(distinct) == 1:
            return self.flat_index(distinct.pop())
        covered = torch.zeros(self.num_params, dtype=torch.bool)
        for spec in distinct:
            covered[self.flat_index(spec)] = True
        return covered.nonzero().squeeze(1)

    @torch.no_grad()
    def extract(self, spec: SubnetSpec) -> "Subnet":
        """A standalone module holding copies of the spec's slices; computes what ``forward`` does."""
        return Subnet(self.space, spec.arch, {k: v.detach().clone() for k, v in self.sliced(spec).items()})

    @torch.no_grad()
    def merge(self, spec: SubnetSpec, subnet: "Subnet") -> None:
        """Write a (trained) subnet's weights back into its slice of the supernet."""
        self.flat[self.flat_index(spec)] = subnet.flat_values()


class Subnet(nn.Module):
    """A plain network extracted from the supernet: fixed architecture, no slicing."""

    def __init__(self, space: ResNetSpace, arch: Arch, params: dict[str, torch.Tensor]):
        super().__init__()
        self.space, self.arch = space, arch
        self.names = list(params)
        self.weights = nn.ParameterList(nn.Parameter(t) for t in params.values())

    def forward(self, x: torch.Tensor, statistics: NormStatistics | None = None) -> torch.Tensor:
        return network_forward(dict(zip(self.names, self.weights)), self.space, self.arch, x, statistics=statistics)

    def flat_values(self) -> torch.Tensor:
        return torch.cat([w.detach().reshape(-1) for w in self.weights])


CACHE_SPECS = 512   # specs whose slicing and indices a model remembers
INDEX_CACHE_BYTES = 64 * 2**20   # at most this much of element indices (DISTREAL draws new subsets every batch)


def _remember(cache: OrderedDict, spec: SubnetSpec, value, max_bytes: int = 0):
    """Keep ``value`` for ``spec``, forgetting the oldest entries beyond CACHE_SPECS (and, for index
    tensors, beyond ``max_bytes`` in all; the newest entry is always kept)."""
    cache[spec] = value
    while len(cache) > CACHE_SPECS:
        cache.popitem(last=False)
    if max_bytes:
        total = sum(v.numel() * v.element_size() for v in cache.values())
        while total > max_bytes and len(cache) > 1:
            _, dropped = cache.popitem(last=False)
            total -= dropped.numel() * dropped.element_size()
    return value


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
