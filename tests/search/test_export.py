"""tools/export.py: a trained subnet as a torch.export program that plain torch runs without hpcfed,
computing what hpcfed's evaluation computes; bad input stops it in one line with nothing written."""
from __future__ import annotations

import numpy as np
import pytest

from hpcfed.errors import ConfigError
from hpcfed.search.export import parse_arch
from hpcfed.supernet import Arch, MobileNetSpace, ResNetSpace


def test_architecture_names_round_trip_and_are_read_as_the_spaces_choices():
    spaces = [ResNetSpace((1, 8, 8), 10, depths=(2, 3, 1), kernel_choices=(3, 5, 7), width_choices=(0.25, 0.5, 1.0)),
              ResNetSpace((3, 32, 32), 10, expand_choices=(0.1, 0.14, 1 / 3, 2.5), width_choices=(2 / 3, 1.0)),
              MobileNetSpace((1, 8, 8), 10, expand_choices=(0.5, 0.75, 1.0), kernel_choices=(3, 5))]
    rng = np.random.default_rng(0)
    for space in spaces:
        for _ in range(50):
            arch = space.sample(rng)
            assert parse_arch(arch.name, space) == arch            # 1/3 named .333333 is read as 1/3
            assert Arch.from_name(arch.name).name == arch.name
    assert Arch.from_name("d2,1-e.25,.5,1-k3,3,5-w1") == Arch((2, 1), ((0.25, 0.5), (1.0,)), ((3, 3), (5,)), 1.0)
    for bad in ["d2,1-e.25,.5-k3,3,5-w1", "2,1-e1,1,1-k3,3,3-w1", "d2-e1,1-k3,3-w", "largest", ""]:
        with pytest.raises(ConfigError, match="expected d<depth per stage>"):
            Arch.from_name(bad)
