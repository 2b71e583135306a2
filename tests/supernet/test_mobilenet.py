"""Tests of the MobileNet-V1-style space: its architectures, parameters, forward pass and costs.

As tests/supernet/test_supernet.py does for the ResNet: extraction equals the supernet, an independent
plain-torch forward sliced by hand, costs written out with their arithmetic.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpcfed.errors import ConfigError
from hpcfed.supernet import Arch, MobileNetSpace, SubnetSpec, cost
from tests.fakes import tiny_mobilenet
from tests.supernet.test_supernet import (NORM_LEAVES, NORMS, assert_extraction_selects_the_channel_sets,
                                          hand_norm, inputs, make_model)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- extraction computes what the supernet computes ---------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
def test_non_prefix_channel_sets_supernet_equals_extracted_subnet(norm):
    space = tiny_mobilenet(norm, width_choices=(0.5, 1.0))
    model = make_model(space)
    arch = Arch((2, 1), ((1.0, 1.0), (0.5,)), ((7, 3), (5,)), 0.5)
    assert space.group_sizes(arch) == {"stem": 4, "s0": 4, "s1": 4}   # s1: 16 x 0.5 x 0.5
    spec = SubnetSpec.of(arch, {"stem": (1, 3, 4, 6), "s0": (0, 2, 5, 7), "s1": (3, 8, 9, 15)})
    assert_extraction_selects_the_channel_sets(model, spec)


# --- an independent plain-torch forward of a 1-stage space -----------------------------------------

CROP = {3: slice(2, 5), 5: slice(1, 6), 7: slice(0, 7)}   # centres of the stored 7x7


def hand_forward(W, norm, x, stem_c, out_c, kernels):
    """stem -> depthwise-separable blocks of a 1-stage (stride 2) space -> head, sliced by hand;
    the depthwise convolution is written as one single-channel convolution per channel."""
    def nrm(h, prefix, c):
        return hand_norm(norm, h, [W[f"{prefix}.{leaf}"][:c] for leaf in NORM_LEAVES[norm]])

    h = F.relu(nrm(F.conv2d(x, W["stem.conv"][:stem_c, :1], padding=1), "stem.norm", stem_c))
    cin = stem_c
    for b, k in enumerate(kernels):
        pre, stride = f"stage0.block{b}", (2 if b == 0 else 1)
        dw = W[f"{pre}.dw"][:cin, :, CROP[k], CROP[k]]
        y = torch.cat([F.conv2d(h[:, c:c + 1], dw[c:c + 1], stride=stride, padding=k // 2) for c in range(cin)], 1)
        y = F.relu(nrm(y, f"{pre}.dw_norm", cin))
        y = nrm(F.conv2d(y, W[f"{pre}.pw"][:out_c, :cin]), f"{pre}.pw_norm", out_c)
        h = F.relu(y) if b == 0 else F.relu(y + h)          # no shortcut where the channels change
        cin = out_c
    return F.linear(h.mean(dim=(2, 3)), W["head.weight"][:, :out_c], W["head.bias"])


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch, stem_c, out_c", [
    # width 1, ratio 1: stem 8, stage 8; kernel 3 (cropped) then 7 (the whole kernel)
    (Arch((2,), ((1.0, 1.0),), ((3, 7),), 1.0), 8, 8),
    # ratio 0.5: stage 8 x 0.5 = 4; one block (elastic depth), kernel 5
    (Arch((1,), ((0.5,),), ((5,),), 1.0), 8, 4),
    # width 0.5: stem 4, stage 8 x 0.5 x 0.5 = 2, rounded up to the divisor 4; kernels 7 then 5
    (Arch((2,), ((0.5, 0.5),), ((7, 5),), 0.5), 4, 4),
])
def test_supernet_forward_matches_hand_sliced_plain_torch(norm, arch, stem_c, out_c):
    space = MobileNetSpace((1, 8, 8), 10, stem=8, widths=(8,), depths=(2,), strides=(2,),
                           expand_choices=(0.5, 1.0), kernel_choices=(3, 5, 7), width_choices=(0.5, 1.0),
                           divisor=4, norm=norm)
    model = make_model(space, seed=3)
    W = {name: w.detach() for name, w in zip(model.names, model.weights)}
    assert W["stage0.block0.dw"].shape == (8, 1, 7, 7) and W["stage0.block1.dw"].shape == (8, 1, 7, 7)
    assert W["stage0.block0.pw"].shape == (8, 8, 1, 1)
    x = inputs(batch=3, seed=4)
    with torch.no_grad():
        got = model(x, SubnetSpec(arch))
    expected = hand_forward(W, norm, x, stem_c, out_c, arch.kernels[0])
    assert (got - expected).abs().max().item() <= 1e-5


def test_smaller_kernels_are_the_centre_of_the_7x7():
    space = tiny_mobilenet("none")
    model = make_model(space)
    with torch.no_grad():
        model.flat.copy_(torch.arange(model.num_params, dtype=torch.float32))   # every element its own position
    spec = SubnetSpec(Arch((2, 1), ((1.0, 1.0), (1.0,)), ((3, 5), (7,)), 1.0))
    sub = dict(zip(model.extract(spec).names, model.extract(spec).weights))
    full = {name: w.detach() for name, w in zip(model.names, model.weights)}
    assert torch.equal(sub["stage0.block0.dw"], full["stage0.block0.dw"][:, :, 2:5, 2:5])
    assert torch.equal(sub["stage0.block1.dw"], full["stage0.block1.dw"][:, :, 1:6, 1:6])
    assert torch.equal(sub["stage1.block0.dw"], full["stage1.block0.dw"])
    assert sub["stage0.block0.dw"][0, 0, 1, 1] == full["stage0.block0.dw"][0, 0, 3, 3]   # the centre stays
    assert torch.equal(model.flat[model.flat_index(spec)], model.extract(spec).flat_values())


# --- the space -------------------------------------------------------------------------------------

def test_params_and_channel_groups():
    space = tiny_mobilenet("rms")
    metas = {m.name: m for m in space.params()}
    dw, pw = metas["stage1.block0.dw"], metas["stage1.block0.pw"]
    assert (dw.shape, dw.groups, dw.kernel_sliced) == ((8, 1, 7, 7), ("s0", None, None, None), True)
    assert (pw.shape, pw.groups, pw.kernel_sliced) == ((16, 8, 1, 1), ("s1", "s0", None, None), False)
    assert metas["stage1.block1.dw"].groups[0] == "s1" and metas["stage1.block0.dw_norm.scale"].groups == ("s0",)
    assert metas["stage1.block0.pw_norm.shift"].groups == ("s1",)
    assert not any("down" in name or "conv1" in name for name in metas)   # no projection shortcut
    assert space.max_group_sizes() == {"stem": 8, "s0": 8, "s1": 16}
    arch = Arch((1, 2), ((0.5,), (1.0, 1.0)), ((3,), (3, 7)), 1.0)
    assert space.group_sizes(arch) == {"stem": 8, "s0": 4, "s1": 16}


def test_a_stage_has_one_channel_ratio():
    space = tiny_mobilenet(width_choices=(0.5, 1.0))
    with pytest.raises(ConfigError, match=r"stage 1 expands \[1.0, 0.5\].*channel ratio") as info:
        space.validate(Arch((1, 2), ((0.5,), (1.0, 0.5)), ((3,), (3, 3)), 1.0))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="expand 0.75"):                  # the ResNet checks still apply
        space.validate(Arch((1, 1), ((0.75,), (1.0,)), ((3,), (3,)), 1.0))
    rng = np.random.default_rng(2)
    archs = [space.sample(rng) for _ in range(30)] + [space.largest(), space.smallest()] + space.references(5)
    for arch in archs:
        assert space.validate(arch) is arch
        assert all(len(set(ratios)) == 1 for ratios in arch.expands)
    assert space.smallest() == Arch((1, 1), ((0.5,), (0.5,)), ((3,), (3,)), 0.5)
    assert space.largest() == Arch((2, 2), ((1.0, 1.0), (1.0, 1.0)), ((7, 7), (7, 7)), 1.0)


# --- costs ---------------------------------------------------------------------------------------

def test_cost_hand_computed_two_stages():
    space = MobileNetSpace((1, 4, 4), 3, stem=4, widths=(4, 8), depths=(1, 2), strides=(1, 2),
                           expand_choices=(0.5, 1.0), kernel_choices=(3, 5), divisor=2, norm="bn")
    arch = Arch((1, 2), ((1.0,), (1.0, 1.0)), ((5,), (3, 5)), 1.0)
    assert space.group_sizes(arch) == {"stem": 4, "s0": 4, "s1": 8}
    assert space.spatial_sizes() == [(4, 4), (2, 2)]
    c = cost(space, arch)
    # stem 4*1*9 over 4x4 = 576; s0b0 (4x4, kernel 5): dw 4*25*16 = 1600, pw 4*4*16 = 256;
    # s1b0 (2x2, kernel 3): dw 4*9*4 = 144, pw 8*4*4 = 128; s1b1 (kernel 5): dw 8*25*4 = 800,
    # pw 8*8*4 = 256; head 8*3 = 24.
    assert c.macs == 576 + 1600 + 256 + 144 + 128 + 800 + 256 + 24 == 3784
    # params: stem 36 + bn 8; s0b0 dw 100 + bn 8, pw 16 + bn 8; s1b0 dw 36 + bn 8, pw 32 + bn 16;
    # s1b1 dw 200 + bn 16, pw 64 + bn 16; head 24 + 3.
    assert c.params == 44 + 132 + 92 + 296 + 27 == 591
    # activations: stem 4*16; s0b0 (4 + 4)*16; s1b0 (4 + 8)*4; s1b1 (8 + 8)*4.
    assert c.activations == 64 + 128 + 48 + 64 == 304
    # ratio 0.5 in stage 1: 4 channels; s1b0 dw 4*9*4 = 144, pw 4*4*4 = 64; s1b1 dw 4*25*4 = 400,
    # pw 64; head 4*3 = 12.
    half = cost(space, Arch((1, 2), ((1.0,), (0.5, 0.5)), ((5,), (3, 5)), 1.0))
    assert half.macs == 576 + 1600 + 256 + 144 + 64 + 400 + 64 + 12 == 3116


