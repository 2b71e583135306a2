"""The parts of a run that its job names: the data set, the search space, the device, the threads.

Every rank builds them the same way from the job (and tools rebuild a finished run's from the job
its results file records, hpcfed.search.trained), so a space or a data set never depends on who
built it.
"""
from __future__ import annotations

import os

import torch

from hpcfed.config import JobConfig
from hpcfed.data import FederatedData, load_federated_data
from hpcfed.errors import HpcfedError
from hpcfed.runtime.comm import Comm
from hpcfed.supernet import SPACES, ResNetSpace


def load_data(job: JobConfig) -> FederatedData:
    """The job's federated data set (``data`` section, ``clients.total``, ``seed``)."""
    return load_federated_data(job.data, job.clients.total, job.seed)


def build_space(job: JobConfig, input_shape, num_classes: int) -> ResNetSpace:
    """The job's search space (``model.space``: resnet or mobilenet) for this data."""
    m = job.model
    return SPACES[m.space](tuple(input_shape), num_classes, m.stem, m.widths, m.depths, m.strides,
                          m.expand_choices, m.kernel_choices, m.width_choices, m.divisor, m.norm)


def pick_device(job: JobConfig, comm: Comm) -> torch.device:
    """CPU, or the GPU ``node-local rank mod GPU count`` (several ranks may share a GPU)."""
    choice = job.train.device
    if choice == "cuda" and not torch.cuda.is_available():
        raise HpcfedError("train.device = 'cuda' but no CUDA GPU is visible; accepted here: auto | cpu")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", comm.local_rank % torch.cuda.device_count())


def set_threads(job: JobConfig, comm: Comm) -> int:
    """torch's intra-op threads for this rank: ``train.threads``, or the node's cores shared by its ranks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = job.train.threads or max(1, cores // comm.local_size)
    torch.set_num_threads(threads)
    return threads
