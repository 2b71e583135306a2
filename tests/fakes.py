"""Small files in real formats, written by tests (nothing is downloaded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hpcfed.data.cifar import write_cifar10_batch
from hpcfed.data.cifar100 import write_random_cifar100
from hpcfed.data.femnist import FILES, random_writers, write_femnist
from hpcfed.population.devices import Device
from hpcfed.strategies import ClientSlot
from hpcfed.supernet import MobileNetSpace, ResNetSpace


def write_batch(file, n: int, seed: int, data=None, protocol: int = 2) -> None:
    """Writes one batch of n random images in the standard cifar-10-batches-py pickle format."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data
    write_cifar10_batch(file, images, labels, protocol)


def write_cifar10(folder: Path, per_batch: int = 20) -> Path:
    """A tiny cifar-10-batches-py folder in the standard format (5 train batches and a test batch)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_batch(folder / f"data_batch_{i}", per_batch, seed=i)
    write_batch(folder / "test_batch", per_batch, seed=0)
    return folder


def write_cifar100(folder: Path, train: int = 60, test: int = 20) -> Path:
    """A tiny cifar-100-python folder in the standard format (train, test and meta pickles)."""
    return Path(write_random_cifar100(folder, train, test))


WRITERS = (5, 7, 0, 3, 9, 4)   # samples per training writer (the third has none)


def write_fed_emnist(folder: Path, counts=WRITERS, test_counts=(2, 3, 2), labels: str = "all",
                     classes: int = 62) -> Path:
    """A tiny folder of TFF's federated EMNIST files (train and test, ``labels``' file names)."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test = FILES[labels]
    write_femnist(folder / train, random_writers(list(counts), classes, seed=1))
    write_femnist(folder / test, random_writers(list(test_counts), classes, seed=2))
    return folder


def tiny_space(norm: str = "bn", width_choices=(1.0,)) -> ResNetSpace:
    """A two-stage elastic ResNet for 8x8 inputs, small enough for fast unit tests."""
    return ResNetSpace((1, 8, 8), 10, stem=8, widths=(8, 16), depths=(2, 2), strides=(1, 2),
                       kernel_choices=(3, 5), width_choices=width_choices, divisor=4, norm=norm)


def tiny_mobilenet(norm: str = "bn", width_choices=(1.0,)) -> MobileNetSpace:
    """A two-stage elastic MobileNet for 8x8 inputs with kernels 3/5/7 and two channel ratios."""
    return MobileNetSpace((1, 8, 8), 10, stem=8, widths=(8, 16), depths=(2, 2), strides=(1, 2),
                          expand_choices=(0.5, 1.0), kernel_choices=(3, 5, 7), width_choices=width_choices,
                          divisor=4, norm=norm)


def train_task(slot: int, client: int, spec, weight: float, model: int = 0, group: int | None = None,
               schedule=None, footprint=None):
    """A train task as the planner makes it (footprint: the spec's slice unless given)."""
    from hpcfed.round.plan import TRAIN, Task
    return Task(slot, TRAIN, client, model, spec, schedule, footprint or (spec,), weight, 1.0,
                group=slot if group is None else group)


def run_plan(host, round_index: int, tasks, models: dict):
    """Run ``tasks`` as one round's plan through the serial backend: (sums per model, outcome)."""
    from hpcfed.engine.backend import SerialBackend
    from hpcfed.round.plan import RoundPlan
    return SerialBackend(host).run(RoundPlan(round_index, tuple(tasks)), models, lambda: None)


def specs_of(assigned) -> list:
    """The specs of a one-model strategy's assignment (Strategy.assign gives (model, spec) or None)."""
    assert all(a is None or a[0] == 0 for a in assigned)
    return [None if a is None else a[1] for a in assigned]


def slot_of(client: int, samples: int, memory_bytes: float = 1e9) -> ClientSlot:
    """A sampled client with ``samples`` training samples on a fast device, at full compute."""
    return ClientSlot(client, samples, Device(1e9, memory_bytes, 1e6, 1e6), 1.0)


class Sealed:
    """Stands in for a test tensor: its shape may be read and it may be moved (``.to``), nothing else."""

    def __init__(self, shape):
        self.shape = shape

    def to(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        raise AssertionError(f"the search read the test set (.{name})")

    def __getitem__(self, index):
        raise AssertionError("the search read the test set (indexing)")

    def __len__(self):
        raise AssertionError("the search read the test set (len)")

    @classmethod
    def __torch_function__(cls, *args, **kwargs):
        raise AssertionError("the search read the test set (a torch function)")
