"""Tests of the validation splits of hpcfed.data: client validation and server validation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hpcfed.data import FederatedData
from hpcfed.data.splits import ClientValidation
from hpcfed.errors import DataError
from tests.fakes import write_cifar10
from tests.loading import load_data

SERVER_KEY = "data.server_val_fraction"


def load(name="digits", path=None, partition="dirichlet", **overrides) -> FederatedData:
    """load_federated_data with small defaults."""
    args = dict(alpha=0.3, shards_per_client=2, num_clients=17, test_fraction=0.2, seed=0)
    args.update(overrides)
    return load_data(name, path, partition, **args)


def synthetic(**overrides) -> FederatedData:
    """A small Synthetic(0.5, 0.5) data set."""
    args = dict(num_clients=30, seed=1, synthetic_alpha=0.5, synthetic_beta=0.5, synthetic_dim=20)
    args.update(overrides)
    return load("synthetic", None, "natural", **args)


@pytest.fixture()
def cifar_dir(tmp_path):
    """A tiny fake cifar-10-batches-py folder: 20 images per batch."""
    return write_cifar10(tmp_path / "cifar-10-batches-py")


def cifar(folder, **overrides) -> FederatedData:
    return load("cifar10", str(folder), num_clients=6, test_fraction=0.0, seed=2, **overrides)


def digest(data: FederatedData) -> str:
    """sha256 (16 hex digits) of every array the data set hands out, as the code before the
    validation splits had them."""
    arrays = [data.x_test, data.y_test, data.client_offsets, data.samples_per_client()]
    if hasattr(data, "x_train"):
        arrays += [data.x_train, data.y_train, data.client_indices]
    arrays += [t for k in range(data.num_clients) for t in data.client_data(k)]
    h = hashlib.sha256()
    for a in arrays:
        a = a.numpy() if isinstance(a, torch.Tensor) else a
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def rows(x: torch.Tensor) -> list[bytes]:
    """Every sample of ``x`` as bytes, to compare samples as sets."""
    return [row.tobytes() for row in x.numpy().reshape(len(x), -1)]


def positions(part: torch.Tensor, whole: torch.Tensor) -> np.ndarray:
    """Where each sample of ``part`` lies in ``whole`` (whose samples are distinct)."""
    where = {row: i for i, row in enumerate(rows(whole))}
    assert len(where) == len(whole)
    return np.array([where[row] for row in rows(part)], dtype=np.int64)


# ---------------------------------------------------------------- fractions 0 change nothing

# Digests recorded from commit bd9c001, before the validation splits existed.
BEFORE = {"digits": "65cb893184fcdceb", "synthetic": "f25c3d51505a6a59", "cifar10": "6a2418a7e7a26a23"}


def test_zero_fractions_give_the_arrays_of_the_code_before(cifar_dir):
    explicit = dict(client_val_fraction=0.0, server_val_fraction=0.0)
    assert digest(load()) == digest(load(**explicit)) == BEFORE["digits"]
    assert digest(synthetic(synthetic_samples=10)) == BEFORE["synthetic"]
    assert digest(synthetic(synthetic_samples=10, **explicit)) == BEFORE["synthetic"]
    assert digest(cifar(cifar_dir)) == digest(cifar(cifar_dir, **explicit)) == BEFORE["cifar10"]


def test_zero_fractions_give_empty_validation_sets_of_the_right_shape():
    for data, shape in ((load(), (1, 8, 8)), (synthetic(synthetic_samples=10), (1, 1, 20))):
        assert data.x_val.shape == (0, *shape) and data.y_val.shape == (0,)
        assert data.x_val.dtype == torch.float32 and data.y_val.dtype == torch.int64
        x, y = data.client_validation(3)
        assert x.shape == (0, *shape) and y.shape == (0,) and y.dtype == torch.int64


# ---------------------------------------------------------------- client validation


@pytest.mark.parametrize("partition", ["iid", "dirichlet", "shards"])
def test_stored_client_split_is_a_disjoint_split_of_the_client_samples(partition):
    whole, split = load(partition=partition), load(partition=partition, client_val_fraction=0.3)
    assert torch.equal(whole.x_train, split.x_train) and torch.equal(whole.x_test, split.x_test)
    assert np.array_equal(whole.client_indices, split.client_indices)
    for k in range(whole.num_clients):
        owned = whole.client_samples(k)
        train, val = split.client_samples(k), split.client_samples(k, validation=True)
        assert len(val) == np.floor(0.3 * len(owned)) and len(train) + len(val) == len(owned)
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.sort(owned))
        assert np.array_equal(train, owned[np.isin(owned, train)])  # training keeps its order
        x, y = split.client_validation(k)
        assert torch.equal(x, split.x_train[torch.from_numpy(val.copy())]) and len(y) == len(val)


def test_synthetic_client_split_is_a_disjoint_split_of_the_client_samples():
    whole, split = synthetic(), synthetic(client_val_fraction=0.25)
    assert torch.equal(whole.x_test, split.x_test)
    for k in (0, 11, 29):
        x, y = whole.client_data(k)
        (x_train, y_train), (x_val, y_val) = split.client_data(k), split.client_validation(k)
        train, val = positions(x_train, x), positions(x_val, x)
        assert len(val) == np.floor(0.25 * len(x)) > 0
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(x)))
        assert np.all(np.diff(train) > 0)  # training keeps its order
        assert torch.equal(y_train, y[train]) and torch.equal(y_val, y[val])


def test_client_split_is_deterministic_and_seed_dependent():
    first, again = load(client_val_fraction=0.3, seed=4), load(client_val_fraction=0.3, seed=4)
    for k in (0, 9):
        assert all(torch.equal(a, b) for a, b in zip(first.client_validation(k), again.client_validation(k)))
    assert np.array_equal(ClientValidation(0.3, 4).split(5, 100)[1], ClientValidation(0.3, 4).split(5, 100)[1])
    other_seed, other_client = ClientValidation(0.3, 5).split(5, 100), ClientValidation(0.3, 4).split(6, 100)
    assert not np.array_equal(ClientValidation(0.3, 4).split(5, 100)[1], other_seed[1])
    assert not np.array_equal(ClientValidation(0.3, 4).split(5, 100)[1], other_client[1])


def test_synthetic_client_split_does_not_depend_on_the_population_size():
    small = synthetic(num_clients=1200, synthetic_samples=10, client_val_fraction=0.3)
    large = synthetic(num_clients=100_000, synthetic_samples=10, client_val_fraction=0.3)
    for k in (0, 123, 1199):  # both normalise with the first 1000 clients, so samples agree bit for bit
        for part in ("client_data", "client_validation"):
            assert all(torch.equal(a, b) for a, b in zip(getattr(small, part)(k), getattr(large, part)(k)))
    assert len(large.client_validation(99_999)[1]) == 2  # floor(0.3 * 8)


@pytest.mark.parametrize("fractions", [dict(client_val_fraction=0.3), dict(client_val_fraction=0.3,
                                                                             server_val_fraction=0.2)])
def test_samples_per_client_counts_the_training_samples_without_generating_them(fractions, monkeypatch):
    for data in (load(**fractions), synthetic(**fractions)):
        lengths = [len(data.client_data(k)[1]) for k in range(data.num_clients)]
        if hasattr(data, "generator"):
            monkeypatch.setattr(data.generator, "raw", lambda k: pytest.fail("samples_per_client generated samples"))
        assert np.array_equal(data.samples_per_client(), lengths)


# ---------------------------------------------------------------- server validation


def test_stored_server_validation_is_a_stratified_share_of_the_training_pool():
    whole, split = load(), load(server_val_fraction=0.2, client_val_fraction=0.1)
    assert split.x_val.shape[1:] == (1, 8, 8) and split.y_val.dtype == torch.int64
    assert torch.equal(whole.y_test, split.y_test)  # the test split is unchanged
    assert len(split.y_train) == len(whole.y_train) - len(split.y_val)
    held = np.bincount(split.y_val.numpy(), minlength=10)
    assert np.all(np.abs(held - 0.2 * np.bincount(whole.y_train.numpy(), minlength=10)) <= 0.5)
    # The clients own exactly the pool: every pool index once, training and validation together.
    owned = [split.client_samples(k, v) for k in range(split.num_clients) for v in (False, True)]
    assert np.array_equal(np.sort(np.concatenate(owned)), np.arange(len(split.y_train)))
    # Normalised with the pool's statistics only (one affine map): invert it and compare the
    # multiset of pool, validation and test samples with the digits set, so the three are disjoint.
    x = torch.cat([split.x_train, split.x_val, split.x_test]).double()
    pool = split.x_train.double()
    assert abs(float(pool.mean())) < 1e-5 and abs(float(pool.std(unbiased=False)) - 1) < 1e-5
    raw = np.rint(((x - x.min()) / (x.max() - x.min()) * 16).numpy().reshape(len(x), 64))
    got = np.column_stack([raw, torch.cat([split.y_train, split.y_val, split.y_test]).numpy()])
    digits = load_digits()
    want = np.column_stack([digits.data, digits.target])
    assert np.array_equal(got[np.lexsort(got.T)], want[np.lexsort(want.T)])


def test_stored_server_validation_is_deterministic_and_seed_dependent(cifar_dir):
    first, again, other = (load(server_val_fraction=0.2, seed=s) for s in (3, 3, 4))
    assert torch.equal(first.x_val, again.x_val) and torch.equal(first.y_val, again.y_val)
    assert not torch.equal(first.y_val, other.y_val)
    data = cifar(cifar_dir, server_val_fraction=0.2)
    assert data.x_val.shape[1:] == (3, 32, 32) and len(data.x_val) + len(data.x_train) == 100
    assert torch.equal(data.y_test, cifar(cifar_dir).y_test)


def test_synthetic_server_validation_is_disjoint_from_test_and_training():
    data = synthetic(synthetic_samples=20, server_val_fraction=0.25, client_val_fraction=0.2)
    whole = synthetic(synthetic_samples=20)
    assert data.x_val.shape == (30 * 4, 1, 1, 20)  # floor(0.25 * 16) of each client's 16
    assert torch.equal(whole.y_test, data.y_test)
    assert np.all(data.samples_per_client() == 12 - 2)
    clients = [t for k in range(data.num_clients) for t in (data.client_data(k)[0], data.client_validation(k)[0])]
    train = torch.cat(clients)
    every = rows(data.x_val) + rows(data.x_test) + rows(train)
    assert len(every) == len(set(every)) == 30 * 20  # each of the 600 samples in exactly one place
    # normalised with the training samples that remain (every client is a test client here)
    assert np.allclose(train.double().mean(dim=0).numpy(), 0.0, atol=1e-5)
    assert np.allclose(train.double().std(dim=0, unbiased=False).numpy(), 1.0, atol=1e-5)


def test_synthetic_server_validation_does_not_depend_on_the_population_size_beyond_the_test_set():
    small = synthetic(num_clients=1200, synthetic_samples=20, server_val_fraction=0.25)
    large = synthetic(num_clients=5000, synthetic_samples=20, server_val_fraction=0.25)
    assert torch.equal(small.x_val, large.x_val) and len(large.y_val) == 1000 * 4
    assert torch.equal(small.client_data(1100)[0], large.client_data(1100)[0])
    assert len(large.client_data(999)[1]) == 12 and len(large.client_data(1000)[1]) == 16


# ---------------------------------------------------------------- bad fractions


@pytest.mark.parametrize("key", ["client_val_fraction", "server_val_fraction"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.2", True, None])
@pytest.mark.parametrize("make", [load, synthetic])
def test_bad_fractions_raise_one_line_data_error(make, key, value):
    with pytest.raises(DataError) as caught:
        make(**{key: value})
    message = str(caught.value)
    assert f"data.{key}" in message and repr(value) in message and "[0, 1)" in message
    assert "\n" not in message


@pytest.mark.parametrize("make,fraction,shown", [
    (load, 0.999, "every class"),
    (load, 0.0001, "validation samples"),
    (lambda **kw: synthetic(synthetic_samples=5, **kw), 0.2, "validation samples"),
])
def test_server_fraction_that_empties_a_class_or_the_validation_set_is_refused(make, fraction, shown):
    with pytest.raises(DataError) as caught:
        make(server_val_fraction=fraction)
    message = str(caught.value)
    assert message.startswith(SERVER_KEY) and shown in message and "\n" not in message
