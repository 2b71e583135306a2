"""Tests of hpcfed.supernet: architectures, the space, slicing, extraction, merging, costs and norms.

Small hand-computed cases (Flower's aggregate_test.py style): every expected number is either
written out with its arithmetic or computed by an independent plain-torch implementation.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from hpcfed.errors import ConfigError
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec, cost
from hpcfed.supernet.norm import EPS, normalize
from hpcfed.supernet.slicing import selections
from tests.fakes import tiny_mobilenet, tiny_space

NORMS = ("none", "bn", "rms")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(space: ResNetSpace, seed: int = 0, perturb_norms: bool = True) -> ElasticResNet:
    """A supernet with Kaiming weights and (optionally) non-trivial norm parameters and head bias."""
    g = torch.Generator().manual_seed(seed)
    model = ElasticResNet(space, g)
    if perturb_norms:
        with torch.no_grad():
            for meta, w in zip(model.metas, model.weights):
                if "norm" in meta.name or meta.name == "head.bias":
                    w.add_(0.2 * torch.randn(w.shape, generator=g))
    return model


def inputs(batch: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def assert_extraction_selects_the_channel_sets(model: ElasticResNet, spec: SubnetSpec) -> None:
    """The subnet extracted under ``spec`` (explicit channel sets) computes what the supernet computes
    under it, and the sets, not being prefixes, really select other weights than the prefix subnet."""
    x = inputs()
    with torch.no_grad():
        expected = model(x, spec)
        got = model.extract(spec)(x)
        prefix = model(x, SubnetSpec(spec.arch))
    assert (got - expected).abs().max().item() <= 1e-5
    assert (prefix - expected).abs().max().item() > 1e-3


# --- extraction computes what the supernet computes ---------------------------------------------

@pytest.mark.parametrize("make_space", [tiny_space, tiny_mobilenet])
@pytest.mark.parametrize("norm", NORMS)
def test_extracted_subnet_matches_supernet_on_random_archs(norm, make_space):
    space = make_space(norm, width_choices=(0.5, 1.0))
    model = make_model(space)
    x = inputs()
    rng = np.random.default_rng(123)
    archs = [space.sample(rng) for _ in range(24)]
    assert len(set(archs)) >= 20                       # genuinely different architectures
    assert {k for a in archs for s in a.kernels for k in s} == set(space.kernel_choices)   # centre crops
    with torch.no_grad():
        for arch in archs:
            spec = SubnetSpec(space.validate(arch))
            subnet = model.extract(spec)
            expected = model(x, spec)
            got = subnet(x)
            assert got.shape == (4, 10)
            assert (got - expected).abs().max().item() <= 1e-5, arch.name
            assert cost(space, arch).params == sum(p.numel() for p in subnet.parameters()) \
                == len(model.flat_index(spec)), arch.name


@pytest.mark.parametrize("norm", NORMS)
def test_non_prefix_channel_sets_supernet_equals_extracted_subnet(norm):
    space = tiny_space(norm, width_choices=(0.5, 1.0))
    model = make_model(space)
    arch = Arch((2, 1), ((1.0, 0.5), (0.5,)), ((5, 3), (3,)), 0.5)
    sizes = space.group_sizes(arch)
    assert sizes == {"stem": 4, "s0": 4, "s0b0": 4, "s0b1": 4, "s1": 8, "s1b0": 4}
    spec = SubnetSpec.of(arch, {"s0": (7, 1, 2, 5), "s1b0": (0, 3, 9, 14), "stem": (2, 3, 4, 6)})
    assert spec.channels[0] == ("s0", (1, 2, 5, 7))   # stored sorted, by group
    assert_extraction_selects_the_channel_sets(model, spec)


@pytest.mark.parametrize("norm", NORMS)
def test_non_prefix_spec_equals_prefix_spec_of_channel_permuted_supernet(norm):
    """Independent check: selecting channels idx equals moving them to the front and taking a prefix."""
    space = tiny_space(norm, width_choices=(0.5, 1.0))
    model = make_model(space)
    arch = Arch((1, 2), ((0.5,), (0.25, 1.0)), ((3,), (5, 3)), 0.5)
    chosen = {"s0": (1, 2, 5, 7), "s1": (0, 3, 9, 14, 15, 4, 10, 11), "s1b1": (1, 2, 3, 5, 8, 13, 6, 7)}
    full = space.max_group_sizes()
    permuted = make_model(space, perturb_norms=False)
    with torch.no_grad():
        permuted.flat.copy_(model.flat)
        for group, idx in chosen.items():
            front = sorted(idx)
            perm = torch.tensor(front + [c for c in range(full[group]) if c not in front])
            for meta, w in zip(permuted.metas, permuted.weights):
                for dim, g in enumerate(meta.groups):
                    if g == group:
                        w.copy_(w.index_select(dim, perm))
        x = inputs()
        expected = permuted(x, SubnetSpec(arch))
        got = model(x, SubnetSpec.of(arch, chosen))
    assert (got - expected).abs().max().item() <= 1e-5


# --- an independent plain-torch forward of a 1-stage space -----------------------------------------

def hand_norm(kind, h, params):
    if kind == "none":
        return h
    if kind == "bn":
        weight, bias = params
        mean = h.mean(dim=(0, 2, 3), keepdim=True)
        var = ((h - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)          # biased, batch statistics
        return (h - mean) / torch.sqrt(var + 1e-5) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    shift, scale, bias = params
    z = h - shift.view(1, -1, 1, 1)
    rms = torch.sqrt((z * z).mean(dim=(1, 2, 3), keepdim=True))
    return scale.view(1, -1, 1, 1) * z / (rms + 1e-5) + bias.view(1, -1, 1, 1)


NORM_LEAVES = {"none": (), "bn": ("weight", "bias"), "rms": ("shift", "scale", "bias")}
CROP = {3: slice(1, 4), 5: slice(0, 5)}   # a 3x3 kernel is the centre of the stored 5x5


def hand_forward(W, norm, x, stem_c, out_c, mids, kernels):
    """stem -> blocks of a 1-stage (stride 2) ResNet -> head, from full tensors sliced by hand."""
    def nrm(h, prefix, c):
        return hand_norm(norm, h, [W[f"{prefix}.{leaf}"][:c] for leaf in NORM_LEAVES[norm]])

    h = F.relu(nrm(F.conv2d(x, W["stem.conv"][:stem_c, :1], padding=1), "stem.norm", stem_c))
    cin = stem_c
    for b, (mid, k) in enumerate(zip(mids, kernels)):
        pre, stride = f"stage0.block{b}", (2 if b == 0 else 1)
        w1 = W[f"{pre}.conv1"][:mid, :cin, CROP[k], CROP[k]]
        w2 = W[f"{pre}.conv2"][:out_c, :mid, CROP[k], CROP[k]]
        y = F.relu(nrm(F.conv2d(h, w1, stride=stride, padding=k // 2), f"{pre}.norm1", mid))
        y = nrm(F.conv2d(y, w2, padding=k // 2), f"{pre}.norm2", out_c)
        if b == 0:
            shortcut = nrm(F.conv2d(h, W[f"{pre}.down"][:out_c, :cin], stride=2), f"{pre}.down_norm", out_c)
        else:
            shortcut = h
        h = F.relu(y + shortcut)
        cin = out_c
    return F.linear(h.mean(dim=(2, 3)), W["head.weight"][:, :out_c], W["head.bias"])


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch, stem_c, out_c, mids", [
    # width 1: stem 8, stage 8; mids 8*0.5 = 4 and 8*1.0 = 8; kernels 3 (cropped) then 5 (full)
    (Arch((2,), ((0.5, 1.0),), ((3, 5),), 1.0), 8, 8, (4, 8)),
    # width 0.5: stem 4, stage 4, mid 4*1.0 = 4; second block inactive (elastic depth)
    (Arch((1,), ((1.0,),), ((3,),), 0.5), 4, 4, (4,)),
    # kernel 5 first, then a cropped 3; mids 8*0.5 = 4 twice
    (Arch((2,), ((0.5, 0.5),), ((5, 3),), 1.0), 8, 8, (4, 4)),
])
def test_supernet_forward_matches_hand_sliced_plain_torch(norm, arch, stem_c, out_c, mids):
    space = ResNetSpace((1, 8, 8), 10, stem=8, widths=(8,), depths=(2,), strides=(2,),
                        expand_choices=(0.5, 1.0), kernel_choices=(3, 5), width_choices=(0.5, 1.0),
                        divisor=4, norm=norm)
    model = make_model(space, seed=3)
    W = {name: w.detach() for name, w in zip(model.names, model.weights)}
    assert W["stage0.block0.conv1"].shape == (8, 8, 5, 5)
    x = inputs(batch=3, seed=4)
    with torch.no_grad():
        got = model(x, SubnetSpec(arch))
    expected = hand_forward(W, norm, x, stem_c, out_c, mids, arch.kernels[0])
    assert (got - expected).abs().max().item() <= 1e-5


# --- flat_index, merge, extraction round trip -------------------------------------------------------

SPECS = [
    SubnetSpec(Arch((1, 2), ((0.25,), (0.5, 1.0)), ((3,), (5, 3)), 1.0)),
    SubnetSpec(Arch((2, 2), ((1.0, 1.0), (1.0, 1.0)), ((5, 5), (5, 5)), 1.0)),
    SubnetSpec(Arch((1, 1), ((0.25,), (0.25,)), ((3,), (3,)), 0.5)),
    SubnetSpec.of(Arch((2, 1), ((1.0, 0.5), (0.5,)), ((5, 3), (3,)), 0.5),
                  {"s0": (1, 2, 5, 7), "s1b0": (0, 3, 9, 14)}),
]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.arch.name + ("" if s.is_prefix else "-explicit"))
def test_flat_index_counts_and_distinctness(norm, spec):
    space = tiny_space(norm, width_choices=(0.5, 1.0))
    model = make_model(space)
    index = model.flat_index(spec)
    subnet = model.extract(spec)
    assert index.dtype == torch.int64
    assert len(index) == cost(space, spec.arch).params == sum(p.numel() for p in subnet.parameters())
    assert len(torch.unique(index)) == len(index)
    assert 0 <= int(index.min()) and int(index.max()) < model.num_params
    assert torch.equal(model.flat[index], subnet.flat_values())


def test_union_index_is_the_sorted_union_of_the_specs_flat_indices():
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    model = make_model(space)
    for specs in ([SPECS[0]], SPECS[:2], SPECS, [SPECS[1], SPECS[1]]):
        expected = torch.unique(torch.cat([model.flat_index(s) for s in specs]))   # sorted
        assert torch.equal(model.union_index(specs), expected)


def test_flat_index_of_the_largest_arch_covers_the_whole_supernet():
    space = tiny_space("bn")
    model = make_model(space)
    index = model.flat_index(SubnetSpec(space.largest()))
    assert torch.equal(torch.sort(index).values, torch.arange(model.num_params))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.arch.name + ("" if s.is_prefix else "-explicit"))
def test_merge_changes_exactly_the_flat_index_elements(spec):
    space = tiny_space("rms", width_choices=(0.5, 1.0))
    model = make_model(space)
    before = model.flat.clone()
    subnet = model.extract(spec)
    with torch.no_grad():
        for w in subnet.weights:
            w.add_(1.0)
    model.merge(spec, subnet)
    changed = torch.nonzero(model.flat != before).flatten()
    index = model.flat_index(spec)
    assert torch.equal(changed, torch.sort(index).values)
    assert torch.equal(model.flat[index], before[index] + 1.0)
    # The supernet's parameters are views of flat: the merge is visible through them too.
    assert torch.equal(torch.cat([w.detach().reshape(-1) for w in model.weights]), model.flat)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.arch.name + ("" if s.is_prefix else "-explicit"))
def test_extract_then_merge_leaves_supernet_unchanged(spec):
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    model = make_model(space)
    before = model.flat.clone()
    model.merge(spec, model.extract(spec))
    assert torch.equal(model.flat, before)


def test_extracted_subnet_is_a_copy_not_a_view():
    space = tiny_space("none")
    model = make_model(space)
    before = model.flat.clone()
    subnet = model.extract(SubnetSpec(space.largest()))
    with torch.no_grad():
        for w in subnet.weights:
            w.mul_(2.0)
    assert torch.equal(model.flat, before)


def test_channel_set_out_of_range_is_a_config_error():
    space = tiny_space("none", width_choices=(0.5, 1.0))
    arch = Arch((1, 1), ((1.0,), (1.0,)), ((3,), (3,)), 0.5)   # s0 has 4 of 8 channels
    with pytest.raises(ConfigError, match="s0"):
        selections(space, SubnetSpec.of(arch, {"s0": (1, 2, 5, 8)}))   # channel 8 does not exist


@pytest.mark.parametrize("channels", [
    {"s0": (-1, 2, 5, 7)},          # negative
    {"s0": (1, 2, 5, 6, 7)},        # more than the arch's width (4)
    {"s0": ()},                     # empty
    {"s0": (1, 2, 2, 5)},           # duplicate
    {"s0b1": (0, 1, 2, 3)},         # inactive group (stage 0 has depth 1)
])
def test_bad_channel_sets_are_config_errors(channels):
    space = tiny_space("none", width_choices=(0.5, 1.0))
    arch = Arch((1, 1), ((1.0,), (1.0,)), ((3,), (3,)), 0.5)
    with pytest.raises(ConfigError):
        selections(space, SubnetSpec.of(arch, channels))


# --- Arch values ---------------------------------------------------------------------------------

ARCH = Arch((2, 1), ((0.25, 1.0), (0.75,)), ((3, 5), (3,)), 0.5)


def test_arch_dict_and_json_round_trip():
    d = ARCH.to_dict()
    assert d == {"depths": [2, 1], "expands": [[0.25, 1.0], [0.75]], "kernels": [[3, 5], [3]], "width": 0.5}
    assert Arch.from_dict(d) == ARCH
    assert Arch.from_json(ARCH.to_json()) == ARCH
    assert json.loads(ARCH.to_json()) == d
    assert ARCH.name == "d2,1-e.25,1,.75-k3,5,3-w.5"


def test_arch_yaml_round_trip():
    text = yaml.safe_dump({"arch": ARCH.to_dict()})
    assert Arch.from_dict(yaml.safe_load(text)["arch"]) == ARCH


def test_arch_hdf5_string_attribute_round_trip(tmp_path):
    path = tmp_path / "arch.h5"
    with h5py.File(path, "w") as f:
        f.attrs["arch"] = ARCH.to_json()
    with h5py.File(path, "r") as f:
        value = f.attrs["arch"]
    text = value.decode() if isinstance(value, bytes) else value
    assert Arch.from_json(text) == ARCH


def test_arch_is_hashable_and_equal_values_hash_equal():
    same = Arch((2, 1), ((0.25, 1.0), (0.75,)), ((3, 5), (3,)), 0.5)
    other = Arch((2, 1), ((0.25, 1.0), (0.75,)), ((3, 5), (5,)), 0.5)
    table = {ARCH: "a", other: "b"}
    assert same == ARCH and hash(same) == hash(ARCH) and table[same] == "a"
    assert other != ARCH and table[other] == "b"
    assert len({ARCH, same, Arch.from_json(ARCH.to_json())}) == 1
    assert SubnetSpec(same) == SubnetSpec(ARCH) and hash(SubnetSpec(same)) == hash(SubnetSpec(ARCH))


@pytest.mark.parametrize("bad", [
    {"depths": [1], "expands": [[1.0], [1.0]], "kernels": [[3]]},       # stage count mismatch
    {"depths": [2], "expands": [[1.0]], "kernels": [[3, 3]]},           # one expand for two blocks
    {"depths": [1], "expands": [[1.0]]},                                # no kernels
    {"depths": [1], "expands": [[1.0]], "kernels": [[3]], "colour": 1},  # unknown key
    [1, 2, 3],                                                          # not a mapping
])
def test_arch_from_dict_rejects_bad_input(bad):
    with pytest.raises(ConfigError):
        Arch.from_dict(bad)


# --- the space -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    Arch((2,), ((1.0, 1.0),), ((3, 3),), 1.0),                            # one stage, space has two
    Arch((3, 1), ((1.0,) * 3, (1.0,)), ((3,) * 3, (3,)), 1.0),            # depth 3 > 2
    Arch((1, 1), ((0.3,), (1.0,)), ((3,), (3,)), 1.0),                    # expand 0.3 not a choice
    Arch((1, 1), ((1.0,), (1.0,)), ((3,), (7,)), 1.0),                    # kernel 7 not a choice
    Arch((1, 1), ((1.0,), (1.0,)), ((3,), (3,)), 0.75),                   # width 0.75 not a choice
    Arch((0, 1), ((), (1.0,)), ((), (3,)), 1.0),                          # depth 0
])
def test_validate_rejects_out_of_space_archs(bad):
    space = tiny_space(width_choices=(0.5, 1.0))
    with pytest.raises(ConfigError):
        space.validate(bad)


def test_validate_accepts_sampled_archs():
    space = tiny_space(width_choices=(0.5, 1.0))
    rng = np.random.default_rng(5)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.validate(arch) is arch


@pytest.mark.parametrize("count", [2, 3, 5, 9])
def test_references_are_monotone_in_macs_from_smallest_to_largest(count):
    space = ResNetSpace((1, 8, 8), 10, stem=8, widths=(16, 32), depths=(3, 2), strides=(1, 2),
                        kernel_choices=(3, 5), width_choices=(0.5, 1.0), divisor=4)
    refs = space.references(count)
    macs = [cost(space, a).macs for a in refs]
    assert refs[0] == space.smallest() and refs[-1] == space.largest()
    assert all(a <= b for a, b in zip(macs, macs[1:]))
    assert len(set(refs)) == len(refs) and 2 <= len(refs) <= count
    assert space.smallest() == Arch((1, 1), ((0.25,), (0.25,)), ((3,), (3,)), 0.5)
    assert space.largest() == Arch((3, 2), ((1.0,) * 3, (1.0,) * 2), ((5,) * 3, (5,) * 2), 1.0)


def test_references_need_two():
    with pytest.raises(ConfigError):
        tiny_space().references(1)


# --- costs ---------------------------------------------------------------------------------------

def test_cost_hand_computed_one_stage():
    space = ResNetSpace((1, 4, 4), 3, stem=4, widths=(4,), depths=(1,), strides=(1,),
                        expand_choices=(0.5, 1.0), kernel_choices=(3,), divisor=2, norm="none")
    arch = Arch((1,), ((0.5,),), ((3,),), 1.0)
    assert space.group_sizes(arch) == {"stem": 4, "s0": 4, "s0b0": 2}
    c = cost(space, arch)
    # stem 4x1x3x3 over 4x4 = 576; conv1 2x4x3x3 and conv2 4x2x3x3 over 4x4 = (72 + 72) x 16 = 2304;
    # down 4x4x1x1 over 4x4 = 256; head 4 x 3 = 12.
    assert c.macs == 576 + 2304 + 256 + 12 == 3148
    # params: stem 36, conv1 72, conv2 72, down 16, head 12 + 3.
    assert c.params == 36 + 72 + 72 + 16 + 12 + 3 == 211
    # activations: stem 4x16, conv1 2x16, conv2 4x16, down 4x16.
    assert c.activations == 64 + 32 + 64 + 64 == 224
    assert c.param_bytes == 844
    assert c.train_macs(10) == 3 * 3148 * 10


def test_cost_hand_computed_two_stages_stride_and_crop():
    space = ResNetSpace((1, 5, 5), 2, stem=4, widths=(4, 8), depths=(1, 1), strides=(1, 2),
                        expand_choices=(0.5, 1.0), kernel_choices=(3, 5), divisor=4, norm="bn")
    arch = Arch((1, 1), ((1.0,), (0.5,)), ((5,), (3,)), 1.0)
    assert space.group_sizes(arch) == {"stem": 4, "s0": 4, "s0b0": 4, "s1": 8, "s1b0": 4}
    assert space.spatial_sizes() == [(5, 5), (3, 3)]          # floor((5 - 1) / 2) + 1 = 3
    c = cost(space, arch)
    # stem 4*1*9*25 = 900; stage 0 (5x5, kernel 5): (4*4*25 + 4*4*25) * 25 = 20000, down 4*4*25 = 400;
    # stage 1 (3x3, kernel 3): (4*4*9 + 8*4*9) * 9 = 3888, down 8*4*9 = 288; head 8*2 = 16.
    assert c.macs == 900 + 20000 + 400 + 3888 + 288 + 16 == 25492
    # params: stem conv 36 + bn 8; s0: conv1 4*4*25 = 400 + bn 8, conv2 400 + bn 8, down 16 + bn 8;
    # s1: conv1 4*4*9 = 144 + bn 8, conv2 8*4*9 = 288 + bn 16, down 32 + bn 16; head 16 + 2.
    assert c.params == 44 + 408 + 408 + 24 + 152 + 304 + 48 + 18 == 1406


@pytest.mark.parametrize("make_space", [tiny_space, tiny_mobilenet])
@pytest.mark.parametrize("norm", NORMS)
def test_cost_matches_counted_convolutions_of_a_forward_pass(norm, make_space, monkeypatch):
    """Independent check: count MACs and outputs of every conv2d/linear call of a real forward
    (out elements x weights per output: k*k for a depthwise filter)."""
    space = make_space(norm, width_choices=(0.5, 1.0))
    model = make_model(space)
    counted = {"macs": 0, "acts": 0}
    conv2d, linear = F.conv2d, F.linear

    def counting_conv2d(x, w, *args, **kwargs):
        out = conv2d(x, w, *args, **kwargs)
        counted["macs"] += out[0].numel() * w[0].numel()
        counted["acts"] += out[0].numel()
        return out

    def counting_linear(x, w, b=None):
        counted["macs"] += w.numel()
        return linear(x, w, b)

    monkeypatch.setattr(F, "conv2d", counting_conv2d)
    monkeypatch.setattr(F, "linear", counting_linear)
    rng = np.random.default_rng(11)
    with torch.no_grad():
        for _ in range(10):
            arch = space.sample(rng)
            counted.update(macs=0, acts=0)
            model(inputs(batch=2), SubnetSpec(arch))
            c = cost(space, arch)
            assert (counted["macs"], counted["acts"]) == (c.macs, c.activations), arch.name


def test_macs_strictly_increase_with_expand_and_depth():
    space = ResNetSpace((1, 8, 8), 10, stem=8, widths=(16, 32), depths=(2, 2), strides=(1, 2),
                        kernel_choices=(3, 5), divisor=4)
    es = (0.25, 0.5, 0.75, 1.0)
    macs = [cost(space, Arch((2, 2), ((e, 0.5), (0.5, 0.5)), ((3, 3), (3, 3)))).macs for e in es]
    assert all(a < b for a, b in zip(macs, macs[1:])), macs
    macs = [cost(space, Arch((2, 2), ((0.5, 0.5), (0.5, e)), ((3, 3), (3, 3)))).macs for e in es]
    assert all(a < b for a, b in zip(macs, macs[1:])), macs
    shallow = cost(space, Arch((1, 2), ((0.5,), (0.5, 0.5)), ((3,), (3, 3)))).macs
    deep = cost(space, Arch((2, 2), ((0.5, 0.25), (0.5, 0.5)), ((3, 3), (3, 3)))).macs
    assert shallow < deep
    shallow = cost(space, Arch((2, 1), ((0.5, 0.5), (0.5,)), ((3, 3), (3,)))).macs
    deep = cost(space, Arch((2, 2), ((0.5, 0.5), (0.5, 0.25)), ((3, 3), (3, 3)))).macs
    assert shallow < deep
    small_k = cost(space, Arch((1, 1), ((0.5,), (0.5,)), ((3,), (3,)))).macs
    big_k = cost(space, Arch((1, 1), ((0.5,), (0.5,)), ((5,), (3,)))).macs
    assert small_k < big_k


# --- normalisation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
def test_supernet_has_no_running_statistics(norm):
    model = make_model(tiny_space(norm))
    assert [name for name, _ in model.named_buffers()] == ["flat"]
    assert not any("running" in k or "num_batches" in k for k in model.state_dict())
    subnet = model.extract(SubnetSpec(model.space.largest()))
    assert list(subnet.named_buffers()) == []


def test_rms_normalize_matches_hand_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 2, 5, generator=g, dtype=torch.float64) * 3 + 1
    a = torch.randn(4, generator=g, dtype=torch.float64)
    gain = torch.randn(4, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    got = normalize("rms", x, [a, gain, b])
    xn, an, gn, bn = x.numpy(), a.numpy(), gain.numpy(), b.numpy()
    expected = np.empty_like(xn)
    for i in range(3):                                     # per sample
        z = xn[i] - an[:, None, None]                      # (C, H, W)
        rms = np.sqrt(np.sum(z ** 2) / z.size)             # over C, H and W together
        expected[i] = gn[:, None, None] * z / (rms + EPS) + bn[:, None, None]
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    # No statistic crosses samples: sample 1 alone gives the same output.
    np.testing.assert_allclose(normalize("rms", x[1:2], [a, gain, b]).numpy(), expected[1:2], atol=1e-12)


def test_bn_normalize_matches_hand_batch_statistics():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64)
    w = torch.tensor([2.0, -1.0], dtype=torch.float64)
    b = torch.tensor([0.5, 0.25], dtype=torch.float64)
    got = normalize("bn", x, [w, b]).numpy()
    xn = x.numpy()
    for c in range(2):
        values = xn[:, c]                                  # all samples and positions of channel c
        mean, var = values.mean(), ((values - values.mean()) ** 2).mean()
        np.testing.assert_allclose(got[:, c], (values - mean) / np.sqrt(var + EPS) * w[c].item() + b[c].item(),
                                   atol=1e-12)
    assert torch.equal(normalize("none", x, []), x)


def test_bn_supernet_in_eval_mode_uses_batch_statistics():
    model = make_model(tiny_space("bn")).eval()
    x = inputs(batch=4)
    other = x.clone()
    other[1:] = inputs(batch=3, seed=9)                    # same first sample, different batch mates
    spec = SubnetSpec(model.space.largest())
    with torch.no_grad():
        a, b = model(x, spec)[0], model(other, spec)[0]
        again = model(x, spec)[0]
    assert (a - b).abs().max().item() > 1e-4
    assert torch.equal(a, again)                           # no state was updated by the passes


def test_rms_supernet_output_does_not_depend_on_the_batch():
    model = make_model(tiny_space("rms")).eval()
    x = inputs(batch=4)
    spec = SubnetSpec(model.space.largest())
    with torch.no_grad():
        alone = model(x[:1], spec)[0]
        batched = model(x, spec)[0]
    assert (alone - batched).abs().max().item() <= 1e-5
