"""Channels-last training of narrow networks must not crash the process.

torch 2.13 on the CPU (seen with AVX2 kernels) corrupts the heap in a strided 1x1 convolution of
channels-last input with 2-6 input channels, as the shortcut of a ResNet stage with 4 channels has;
hpcfed.supernet.network runs that one convolution on a contiguous copy. The check runs in a child
process, because the failure is an abort or a segmentation fault, not an exception.
"""
from __future__ import annotations

import subprocess
import sys

from tests.launch import ROOT

STEPS = """
import torch, torch.nn.functional as F
from hpcfed.learning.precision import arranged
from hpcfed.supernet import ElasticResNet, ResNetSpace, SubnetSpec
torch.set_num_threads(1)
for cin in (2, 4, 6):
    space = ResNetSpace((1, 8, 8), 10, stem=cin, widths=(cin, 8), depths=(1, 1), strides=(1, 2),
                        kernel_choices=(3,), width_choices=(1.0,), divisor=1, norm="bn")
    net = ElasticResNet(space, torch.Generator().manual_seed(0))
    spec = SubnetSpec(space.largest())
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for _ in range(20):
        F.cross_entropy(net(arranged(x, torch.channels_last), spec), y).backward()
print("trained")
"""


def test_narrow_networks_train_channels_last_without_crashing():
    proc = subprocess.run([sys.executable, "-c", STEPS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "trained", (proc.returncode, proc.stderr[-2000:])
