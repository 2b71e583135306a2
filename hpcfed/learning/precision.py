"""Numeric precision and memory layout of the forward and backward passes (``train.precision``,
``train.memory_format``, ``eval.precision``).

With bf16, matrix products and convolutions run in bfloat16 under ``torch.autocast`` (on the CPU
through oneDNN's bf16 kernels, AVX-512 BF16 and AMX where the CPU has them; on CUDA through the
tensor cores), while the weights stay fp32: gradients arrive in fp32, and the optimiser, the fixed-
point reduction, the merge and the checkpoints never see bf16. Every op is deterministic for a given
machine, so a bf16 run is bit-identical on any rank count and across a resume, as an fp32 run is.
fp32 enters no context at all, so its numbers are exactly those of code without this module.

Channels-last (NHWC) lets oneDNN and cuDNN pick their blocked convolution kernels without reordering
every activation; measured in docs/performance.md, it pays with bf16 (the reorders would otherwise
cost about as much as the bf16 convolutions save) and little or nothing in fp32. So ``auto`` means
channels-last with bf16 and the contiguous layout with fp32, which also keeps fp32 results, golden
hashes included, exactly as they were. Only the training batches change layout; the weights keep
theirs, and the convolutions follow their input.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context in which a forward pass (and its loss) runs at ``precision`` on ``device``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"precision {precision!r}: accepted {' | '.join(PRECISIONS)}")


def eval_precision(train: str, evaluation: str) -> str:
    """The precision of evaluations: ``eval.precision``, or ``train.precision`` when it is empty."""
    return evaluation or train


def memory_format(name: str, precision: str) -> torch.memory_format:
    """The layout that ``train.memory_format`` = ``name`` gives training batches at ``precision``."""
    if name == "auto":
        name = "channels_last" if precision == "bf16" else "contiguous"
    if name == "channels_last":
        return torch.channels_last
    if name == "contiguous":
        return torch.contiguous_format
    raise ValueError(f"memory format {name!r}: accepted {' | '.join(MEMORY_FORMATS)}")


def arranged(x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """``x`` in ``layout`` where it is a batch of images (4 dimensions); other inputs as they are.

    Channels-last strides are set explicitly: for one-channel images (digits, FEMNIST) torch counts the
    plain layout as channels-last already, and the convolutions would keep NCHW throughout.
    """
    if x.dim() != 4 or layout != torch.channels_last:
        return x.contiguous(memory_format=layout) if x.dim() == 4 else x
    n, c, h, w = x.shape
    return torch.empty_strided(x.shape, (h * w * c, 1, w * c, c), dtype=x.dtype, device=x.device).copy_(x)
