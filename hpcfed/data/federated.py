"""The federated data set: the server's test and validation sets and every client's training and
validation samples, whatever their source (hpcfed.data.load builds them from the job's ``data``).

Stored sets (scikit-learn's digits; CIFAR-10, CIFAR-100 and FEMNIST from local files) are held
once, in their stored dtype (uint8 images), their samples partitioned over the clients (FEMNIST
also by writer, ``natural``), and normalised per channel with the statistics of the training pool
when samples are handed out (:class:`StoredData`);
the FedProx Synthetic clients are generated on demand (:class:`GeneratedData`), so memory does not
grow with the population. The test and validation splits and their random streams are described in
hpcfed.data.splits; all randomness comes from numpy Generators seeded with ``[seed, stream, ...]``,
so the same arguments always give identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hpcfed.data.splits import ClientValidation
from hpcfed.data.synthetic import SyntheticClients

NUM_CLASSES = 10  # digits, synthetic, cifar10 and deformed_digits have ten classes
_STATS_CHUNK = 1 << 22  # values per chunk when computing channel statistics


@dataclass(frozen=True, eq=False)
class FederatedData:
    """The server's test and validation sets and the clients' samples, whatever their source.

    ``client_offsets`` (int64, length clients + 1, read-only) gives each client's sample count,
    training and validation together, as ``offsets[k + 1] - offsets[k]``; ``client_split`` says
    which of them are kept for validation. :meth:`client_data` gives client ``k``'s training
    samples, :meth:`client_validation` its validation samples; ``x_test``, ``y_test`` are the
    server's test set and ``x_val``, ``y_val`` its validation set (no samples when its fraction is
    0). Every input handed out is float32 and normalised; ``test_inputs`` and ``val_inputs`` are
    the inputs as held (stored sets hold their stored dtype and normalise on the way out).
    """

    name: str
    test_inputs: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    client_offsets: np.ndarray
    val_inputs: torch.Tensor
    y_val: torch.Tensor
    client_split: ClientValidation

    @property
    def x_test(self) -> torch.Tensor:
        """The server's test inputs, normalised (a new tensor for a stored set)."""
        return self.inputs(self.test_inputs)

    @property
    def x_val(self) -> torch.Tensor:
        """The server's validation inputs, normalised (a new tensor for a stored set)."""
        return self.inputs(self.val_inputs)

    def inputs(self, held: torch.Tensor) -> torch.Tensor:
        """Held inputs as the model takes them: generated sets hold them normalised already."""
        return held

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.client_offsets) - 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one input sample."""
        channels, height, width = self.test_inputs.shape[1:]
        return channels, height, width

    def samples_per_client(self) -> np.ndarray:
        """Returns the number of training samples of every client (without generating any)."""
        counts = np.diff(self.client_offsets)
        return counts - self.client_split.sizes(counts)

    def validation_per_client(self) -> np.ndarray:
        """The number of validation samples of every client (without generating any)."""
        return self.client_split.sizes(np.diff(self.client_offsets))

    def client_data(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client ``k``'s training samples ``(x, y)`` on the CPU."""
        return self._client_part(k, validation=False)

    def client_validation(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client ``k``'s validation samples ``(x, y)`` on the CPU (none when its share is 0)."""
        return self._client_part(k, validation=True)

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _check_client(self, k: int) -> None:
        if not 0 <= k < self.num_clients:
            raise IndexError(f"client {k} out of range 0..{self.num_clients - 1}")


@dataclass(frozen=True, eq=False)
class StoredData(FederatedData):
    """A data set held in memory in its stored dtype (uint8 images; digits as read) and a CSR
    partition of its training pool.

    ``train_inputs``, ``y_train`` are the training pool (without the server's validation set). Client
    ``k`` owns the samples ``client_indices[client_offsets[k]:client_offsets[k + 1]]``, split into
    training and validation by ``client_split``; the two int64 arrays are read-only and are the only
    per-client state. Inputs are normalised per channel with ``mean`` and ``std`` (float32, one per
    channel, from the training pool) only when they are handed out, so a rank holds the data set
    once, in its stored dtype, and a float copy of no more than the samples it is working on.
    """

    train_inputs: torch.Tensor
    y_train: torch.Tensor
    client_indices: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def x_train(self) -> torch.Tensor:
        """The whole training pool, normalised (a float32 copy of it all: for tests and tools)."""
        return self.inputs(self.train_inputs)

    def inputs(self, held: torch.Tensor) -> torch.Tensor:
        """``(held - mean) / std`` per channel in float32, on ``held``'s device: the arithmetic of
        normalising the whole set in place at load, so every value is the same bit for bit."""
        mean = torch.tensor(self.mean, device=held.device)[:, None, None]
        std = torch.tensor(self.std, device=held.device)[:, None, None]
        return held.to(torch.float32, copy=True).sub_(mean).div_(std)

    def client_samples(self, k: int, validation: bool = False) -> np.ndarray:
        """Returns the indices into the pool of client ``k``'s training (or validation) samples (read-only)."""
        self._check_client(k)
        owned = self.client_indices[self.client_offsets[k] : self.client_offsets[k + 1]]
        train, val = self.client_split.split(k, len(owned))
        rows = owned[val if validation else train]
        rows.setflags(write=False)
        return rows

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(self.client_samples(k, validation).copy())
        return self.inputs(self.train_inputs[rows]), self.y_train[rows]


@dataclass(frozen=True, eq=False)
class GeneratedData(FederatedData):
    """Synthetic clients whose samples are generated on demand (hpcfed.data.synthetic); client
    ``k``'s generated training samples are split into training and validation by ``client_split``."""

    generator: SyntheticClients

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_client(k)
        x, y = self.generator.train(k)
        train, val = self.client_split.split(k, len(y))
        rows = torch.from_numpy(val if validation else train)
        return x[rows], y[rows]


def _chunks(n: int, per_sample: int) -> list[slice]:
    """Slices of ``range(n)`` holding about ``_STATS_CHUNK`` values each."""
    step = max(1, _STATS_CHUNK // max(per_sample, 1))
    return [slice(start, start + step) for start in range(0, n, step)]


def channel_statistics(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (float32, a std of 0 taken as 1) of (N, C, H, W)
    samples, summed in float64 over float32 chunks so that the stored dtype does not matter."""
    n, channels = x_train.shape[:2]
    count = x_train.size // channels
    chunks = _chunks(n, x_train[0].size)
    mean = sum(x_train[c].astype(np.float32).sum(axis=(0, 2, 3), dtype=np.float64) for c in chunks) / count
    shift = mean[None, :, None, None]
    var = sum(((x_train[c].astype(np.float32) - shift) ** 2).sum(axis=(0, 2, 3)) for c in chunks) / count
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
