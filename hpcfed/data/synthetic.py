"""Synthetic(alpha, beta) of Li et al., "Federated Optimization in Heterogeneous Networks" (FedProx,
MLSys 2020), generated per client on demand.

For client k: u_k ~ N(0, alpha), W_k ~ N(u_k, 1) (10 x dim), b_k ~ N(u_k, 1), B_k ~ N(0, beta),
v_k ~ N(B_k, 1) per feature, x ~ N(v_k, Sigma) with Sigma_jj = j^-1.2 and y = argmax(W_k x + b_k)
(the softmax of the paper does not change the argmax). As in the FedProx code, alpha and beta are
standard deviations and a client has lognormal(4, 2) + 50 samples (capped at ``MAX_SAMPLES``)
unless a fixed count is given. The first ``test_fraction`` of each client's samples are held out.

Every client draws from its own stream ``[seed, stream, 0, k]``, so any client's data can be made
at any time on the worker that trains it: a population of 100k clients costs a few arrays of
length N, never the samples themselves. The server's test set pools the held-out samples of the
first ``TEST_CLIENTS`` clients (all of them in smaller populations), whose training samples also
give the per-feature normalisation.

The server's validation set is carved from the same clients: client ``k < TEST_CLIENTS`` with
``r`` samples left after the held-out ones gives the next ``floor(server_val_fraction * r)`` of
them to the server's validation set and trains on the rest; later clients give none. A client's
samples are i.i.d. draws of its own stream, so a fixed block of them is a seeded random sample.
The validation set is disjoint from the test set and from every client's training samples, takes
the same share of every test client's training samples and depends on the population size only as
the test set does; the normalisation is fitted to the training samples that remain. A client's own
validation split is then taken from its training samples (hpcfed.data.splits).
"""
from __future__ import annotations

import numpy as np
import torch

NUM_CLASSES = 10
MAX_SAMPLES = 1000      # per client, so the default lognormal sizes stay modest
TEST_CLIENTS = 1000     # clients whose held-out samples form the server's test set
_STREAM = 3             # independent of the split (1) and partition (2) streams of stored data


class SyntheticClients:
    """The generator of every client's samples; only O(num_clients) numbers are kept."""

    def __init__(self, num_clients: int, alpha: float, beta: float, dim: int, samples: int,
                 test_fraction: float, server_val_fraction: float, seed: int):
        self.num_clients, self.dim, self.seed = num_clients, dim, seed
        def stream(name: int) -> np.random.Generator:   # one per quantity: prefixes agree for any N
            return np.random.default_rng([seed, _STREAM, 1, name])
        if samples > 0:
            self.counts = np.full(num_clients, samples, dtype=np.int64)
        else:
            self.counts = np.minimum(stream(0).lognormal(4, 2, num_clients).astype(np.int64) + 50, MAX_SAMPLES)
        self.held_out = np.minimum(np.floor(test_fraction * self.counts).astype(np.int64), self.counts - 1)
        self.server_held = np.floor(server_val_fraction * (self.counts - self.held_out)).astype(np.int64)
        self.server_held[TEST_CLIENTS:] = 0
        self.u = stream(1).normal(0.0, alpha, num_clients)
        self.big_b = stream(2).normal(0.0, beta, num_clients)
        self.sigma_sqrt = np.arange(1, dim + 1, dtype=np.float64) ** -0.6
        self.mean, self.std = np.zeros(dim), np.ones(dim)

    @property
    def train_counts(self) -> np.ndarray:
        """Samples of every client that neither the test set nor the server's validation set holds."""
        return self.counts - self.held_out - self.server_held

    def raw(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """All of client ``k``'s samples, unnormalised: x (count, dim) float64, y (count,) int64."""
        rng = np.random.default_rng([self.seed, _STREAM, 0, k])
        weights = rng.normal(self.u[k], 1.0, (NUM_CLASSES, self.dim))
        bias = rng.normal(self.u[k], 1.0, NUM_CLASSES)
        v = rng.normal(self.big_b[k], 1.0, self.dim)
        x = v + rng.standard_normal((self.counts[k], self.dim)) * self.sigma_sqrt
        return x, np.argmax(x @ weights.T + bias, axis=1).astype(np.int64)

    def as_images(self, x: np.ndarray) -> torch.Tensor:
        """Normalised float32 samples shaped (n, 1, 1, dim)."""
        return torch.from_numpy(((x - self.mean) / self.std).astype(np.float32).reshape(-1, 1, 1, self.dim))

    def train(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client ``k``'s training samples, normalised."""
        x, y = self.raw(k)
        start = self.held_out[k] + self.server_held[k]
        return self.as_images(x[start:]), torch.from_numpy(y[start:])

    def pool(self, clients: range) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Fit the per-feature normalisation to the training samples of ``clients`` and return the
        test set and the server's validation set they hold out, normalised (one pass)."""
        train, test, val = [], [], []
        for k in clients:
            x, y = self.raw(k)
            t, start = self.held_out[k], self.held_out[k] + self.server_held[k]
            train.append(x[start:])
            test.append((x[:t], y[:t]))
            val.append((x[t:start], y[t:start]))
        train = np.concatenate(train)
        self.mean, self.std = train.mean(axis=0), train.std(axis=0)
        self.std[self.std == 0] = 1.0
        return self._stack(test), self._stack(val)

    def _stack(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised samples of ``parts`` (pairs ``(x, y)``), concatenated."""
        xs, ys = zip(*parts)
        return self.as_images(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
