"""Tests of hpcfed.data: partitions, the data sets and the safe CIFAR-10 reader (CIFAR-100 and
FEMNIST: tests/data/test_femnist_cifar100.py)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hpcfed.data import FederatedData
from hpcfed.data.cifar import read_batch, read_pool
from hpcfed.data.partition import (
    partition_dirichlet,
    partition_iid,
    partition_labels,
    partition_shards,
)
from hpcfed.errors import DataError
from tests.fakes import write_batch, write_cifar10
from tests.loading import load_data

PARTITION_CASES = [
    ("iid", {}),
    ("dirichlet", {"alpha": 0.1}),
    ("dirichlet", {"alpha": 100.0}),
    ("shards", {"shards_per_client": 2}),
]


def balanced_labels(num_classes: int, per_class: int) -> np.ndarray:
    """Labels 0..num_classes-1, each repeated per_class times, in shuffled order."""
    return np.random.default_rng(7).permutation(np.repeat(np.arange(num_classes), per_class))


def run_partition(name: str, params: dict, labels: np.ndarray, num_clients: int, seed: int):
    """Runs a partition through the dispatcher with a generator seeded by ``seed``."""
    return partition_labels(
        labels,
        name,
        num_clients,
        alpha=params.get("alpha", 1.0),
        shards_per_client=params.get("shards_per_client", 1),
        rng=np.random.default_rng(seed),
    )


def assert_valid_partition(offsets: np.ndarray, indices: np.ndarray, num_samples: int, num_clients: int):
    """Every index exactly once, monotone offsets, every client non-empty."""
    assert offsets.dtype == np.int64 and indices.dtype == np.int64
    assert offsets.shape == (num_clients + 1,) and offsets[0] == 0 and offsets[-1] == num_samples
    assert np.all(np.diff(offsets) >= 1)
    assert np.array_equal(np.sort(indices), np.arange(num_samples))


def label_entropy(labels: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> float:
    """Mean over clients of the entropy (nats) of the client's label distribution."""
    entropies = []
    for k in range(len(offsets) - 1):
        p = np.bincount(labels[indices[offsets[k] : offsets[k + 1]]]) / (offsets[k + 1] - offsets[k])
        p = p[p > 0]
        entropies.append(-(p * np.log(p)).sum())
    return float(np.mean(entropies))


def labels_per_client(labels: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Number of distinct labels of every client."""
    return np.array(
        [len(np.unique(labels[indices[offsets[k] : offsets[k + 1]]])) for k in range(len(offsets) - 1)]
    )


# ---------------------------------------------------------------- partitions


@pytest.mark.parametrize("name,params", PARTITION_CASES)
def test_partition_covers_every_index_once(name, params):
    labels = balanced_labels(10, 100)
    offsets, indices = run_partition(name, params, labels, 37, seed=0)
    assert_valid_partition(offsets, indices, len(labels), 37)


@pytest.mark.parametrize("name,params", PARTITION_CASES)
def test_partition_is_deterministic(name, params):
    labels = balanced_labels(10, 100)
    first = run_partition(name, params, labels, 20, seed=3)
    again = run_partition(name, params, labels, 20, seed=3)
    other = run_partition(name, params, labels, 20, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])


def test_iid_sizes_differ_by_at_most_one():
    offsets, _ = partition_iid(balanced_labels(10, 100), 7, np.random.default_rng(0))
    sizes = np.diff(offsets)
    assert sizes.max() - sizes.min() <= 1


def test_dirichlet_small_alpha_is_more_skewed():
    labels = balanced_labels(10, 200)
    skewed = partition_dirichlet(labels, 20, 0.05, np.random.default_rng(0))
    uniform = partition_dirichlet(labels, 20, 100.0, np.random.default_rng(0))
    assert label_entropy(labels, *skewed) < 0.5 * label_entropy(labels, *uniform)
    assert label_entropy(labels, *uniform) > 0.9 * np.log(10)


def test_dirichlet_fills_empty_clients():
    # As many clients as samples and a tiny alpha: nearly everyone starts empty and must get exactly one.
    labels = balanced_labels(10, 100)
    offsets, indices = partition_dirichlet(labels, 1000, 0.001, np.random.default_rng(0))
    assert_valid_partition(offsets, indices, 1000, 1000)
    assert np.all(np.diff(offsets) == 1)


def test_shards_aligned_with_classes_give_one_label_per_shard():
    # 10 classes x 100 samples cut into 100 shards of 10: every shard holds exactly one label.
    labels = balanced_labels(10, 100)
    offsets, indices = partition_shards(labels, 50, 2, np.random.default_rng(0))
    assert np.all(np.diff(offsets) == 20)
    assert labels_per_client(labels, offsets, indices).max() <= 2


def test_shards_hold_at_most_two_labels_per_shard():
    # Shards (~9 samples) are smaller than every digits class (>= 174), so a shard spans <= 2 labels.
    labels = load_digits().target
    offsets, indices = partition_shards(labels, 100, 2, np.random.default_rng(1))
    assert_valid_partition(offsets, indices, len(labels), 100)
    assert labels_per_client(labels, offsets, indices).max() <= 4


@pytest.mark.parametrize(
    "name,params", [("iid", {}), ("shards", {"shards_per_client": 2}), ("dirichlet", {"alpha": 0.5})]
)
def test_partition_scales_to_100k_clients(name, params):
    # 100k clients need at least 100k samples (every client owns >= 1); 200k covers shards_per_client=2.
    labels = np.random.default_rng(0).integers(0, 10, 200_000)
    offsets, indices = run_partition(name, params, labels, 100_000, seed=0)
    assert_valid_partition(offsets, indices, len(labels), 100_000)


@pytest.mark.parametrize(
    "call",
    [
        lambda labels, rng: partition_iid(labels, 0, rng),
        lambda labels, rng: partition_iid(labels, 101, rng),
        lambda labels, rng: partition_dirichlet(labels, 5, 0.0, rng),
        lambda labels, rng: partition_shards(labels, 5, 0, rng),
        lambda labels, rng: partition_shards(labels, 50, 3, rng),
        lambda labels, rng: partition_labels(labels, "zipf", 5, alpha=1.0, shards_per_client=1, rng=rng),
    ],
)
def test_partition_rejects_bad_numbers(call):
    with pytest.raises(DataError) as caught:
        call(balanced_labels(10, 10), np.random.default_rng(0))
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- digits


def load(name="digits", path=None, partition="iid", **overrides) -> FederatedData:
    """load_federated_data with small defaults."""
    args = dict(alpha=0.5, shards_per_client=2, num_clients=10, test_fraction=0.2, seed=0)
    args.update(overrides)
    return load_data(name, path, partition, **args)


def assert_normalised(data: FederatedData) -> None:
    """Per-channel train mean 0 / std 1; float32 images and int64 labels."""
    assert data.x_train.dtype == torch.float32 and data.x_test.dtype == torch.float32
    assert data.y_train.dtype == torch.int64 and data.y_test.dtype == torch.int64
    x = data.x_train.double()
    assert np.allclose(x.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-4)
    assert np.allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1.0, atol=1e-4)


def test_digits_shapes_and_normalisation():
    data = load(partition="dirichlet", num_clients=25)
    assert data.name == "digits" and data.num_classes == 10 and data.input_shape == (1, 8, 8)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_test.shape[1:] == (1, 8, 8)
    assert len(data.x_train) + len(data.x_test) == 1797
    assert abs(len(data.x_test) - 0.2 * 1797) <= 10
    assert_normalised(data)
    assert_valid_partition(data.client_offsets, data.client_indices, len(data.y_train), 25)
    assert np.array_equal(data.samples_per_client(), np.diff(data.client_offsets))
    start, stop = data.client_offsets[3:5]
    assert np.array_equal(data.client_samples(3), data.client_indices[start:stop])


def test_digits_train_and_test_are_a_disjoint_split_of_all_samples():
    data = load(test_fraction=0.3)
    x = torch.cat([data.x_train, data.x_test]).numpy().reshape(1797, 64).astype(np.float64)
    # Normalisation is one affine map and the raw pixels span 0..16: invert it and compare multisets.
    raw = np.rint((x - x.min()) / (x.max() - x.min()) * 16)
    y = torch.cat([data.y_train, data.y_test]).numpy()
    digits = load_digits()
    got = np.column_stack([raw, y])
    want = np.column_stack([digits.data, digits.target])
    assert np.array_equal(got[np.lexsort(got.T)], want[np.lexsort(want.T)])
    test_counts = np.bincount(data.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.3 * np.bincount(digits.target)) <= 1)


def test_digits_is_deterministic_and_seed_dependent():
    first, again, other = load(seed=5), load(seed=5), load(seed=6)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    assert np.array_equal(first.client_indices, again.client_indices)
    assert not torch.equal(first.y_test, other.y_test)


def test_client_arrays_are_read_only():
    data = load()
    with pytest.raises(ValueError):
        data.client_samples(0)[0] = 1


# ---------------------------------------------------------------- synthetic


def synthetic(**overrides) -> FederatedData:
    """A small Synthetic(0.5, 0.5) data set."""
    args = dict(num_clients=30, synthetic_alpha=0.5, synthetic_beta=0.5, synthetic_dim=20)
    args.update(overrides)
    return load("synthetic", None, "natural", **args)


def all_clients(data: FederatedData) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(data.client_data(k) for k in range(data.num_clients)))
    return torch.cat(xs), torch.cat(ys)


def test_synthetic_shapes_labels_and_split():
    data = synthetic(synthetic_samples=10)
    assert data.input_shape == (1, 1, 20) and data.num_classes == 10
    x_train, y_train = all_clients(data)
    assert x_train.shape == (30 * 8, 1, 1, 20) and data.x_test.shape == (30 * 2, 1, 1, 20)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert np.all(data.samples_per_client() == 8)
    for y in (y_train, data.y_test):
        assert int(y.min()) >= 0 and int(y.max()) <= 9
    # normalised per feature with the training samples' statistics
    assert np.allclose(x_train.double().mean(dim=0).numpy(), 0.0, atol=1e-5)
    assert np.allclose(x_train.double().std(dim=0, unbiased=False).numpy(), 1.0, atol=1e-5)


def test_synthetic_lognormal_sizes():
    data = synthetic(num_clients=200)
    sizes = data.samples_per_client()  # 50..1000 samples, of which floor(0.2 * size) go to test
    assert sizes.min() >= 40 and sizes.max() <= 800 and len(np.unique(sizes)) > 20
    assert len(np.unique(all_clients(data)[1].numpy())) == 10


def test_synthetic_is_deterministic_and_seed_dependent():
    first, again, other = synthetic(seed=1), synthetic(seed=1), synthetic(seed=2)
    for k in (0, 7, 29):
        assert all(torch.equal(a, b) for a, b in zip(first.client_data(k), again.client_data(k)))
    assert torch.equal(first.x_test, again.x_test)
    assert np.array_equal(first.client_offsets, again.client_offsets)
    assert not torch.equal(first.client_data(0)[0][:5], other.client_data(0)[0][:5])


def test_synthetic_client_data_does_not_depend_on_the_population_size():
    """Each client draws from its own stream, so client k is the same in 300 or 100k clients, and a
    large population costs no memory for samples: the test set pools only the first 1000 clients."""
    small, large = synthetic(num_clients=300, synthetic_samples=5), synthetic(num_clients=100_000, synthetic_samples=5)
    assert torch.equal(small.client_data(123)[1], large.client_data(123)[1])
    assert len(large.x_test) == 1000 and large.num_clients == 100_000
    assert large.client_data(99_999)[0].shape == (4, 1, 1, 20)
    with pytest.raises(IndexError):
        large.client_data(100_000)


# ---------------------------------------------------------------- cifar10


@pytest.fixture()
def cifar_dir(tmp_path):
    """A tiny fake cifar-10-batches-py folder: 20 images per batch."""
    return write_cifar10(tmp_path / "cifar-10-batches-py")


def test_cifar10_loads(cifar_dir):
    data = load("cifar10", str(cifar_dir), "shards", num_clients=5, test_fraction=0.0)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert data.x_train.shape == (100, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert_normalised(data)
    assert_valid_partition(data.client_offsets, data.client_indices, 100, 5)
    with open(cifar_dir / "test_batch", "rb") as handle:
        assert data.y_test.tolist() == pickle.load(handle)[b"labels"]


def test_cifar10_batches_of_unequal_sizes_keep_their_order(cifar_dir):
    for i, n in enumerate((3, 25, 1, 20, 7), start=1):   # the pool is sized by the first batch, then grows
        write_batch(cifar_dir / f"data_batch_{i}", n, seed=10 + i)
    x, y = read_pool([str(cifar_dir / f"data_batch_{i}") for i in range(1, 6)])
    parts = [read_batch(str(cifar_dir / f"data_batch_{i}")) for i in range(1, 6)]
    assert np.array_equal(x, np.concatenate([p[0] for p in parts])) and x.shape == (56, 3, 32, 32)
    assert np.array_equal(y, np.concatenate([p[1] for p in parts]))
    assert load("cifar10", str(cifar_dir), "iid", num_clients=5, test_fraction=0.0).train_inputs.shape[0] == 56


def test_cifar10_channel_layout(tmp_path):
    row = np.repeat(np.arange(3, dtype=np.uint8), 1024)  # 1024 R, then 1024 G, then 1024 B
    row[1] = 7  # red pixel at (0, 1)
    write_batch(tmp_path / "b", 1, seed=0, data=row[None, :], protocol=pickle.HIGHEST_PROTOCOL)
    images, labels = read_batch(str(tmp_path / "b"))
    assert images.shape == (1, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert images[0, 0, 0, 1] == 7 and images[0, 0, 1, 0] == 0
    assert np.all(images[0, 1] == 1) and np.all(images[0, 2] == 2)


class _Shell:
    """Pickles to a call of os.system that would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _remove_test_batch(folder):
    (folder / "test_batch").unlink()


def _truncate_batch_3(folder):
    file = folder / "data_batch_3"
    file.write_bytes(file.read_bytes()[:5000])


def _misshape_batch_2(folder):
    write_batch(folder / "data_batch_2", 20, seed=2, data=np.zeros((20, 3000), dtype=np.uint8))


def _bad_labels_batch_4(folder):
    with open(folder / "data_batch_4", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, handle, protocol=2)


def _malicious_batch_1(folder):
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": _Shell(folder / "pwned"), b"labels": [0]}, handle, protocol=2)


@pytest.mark.parametrize(
    "damage,named",
    [
        (_remove_test_batch, "test_batch"),
        (_truncate_batch_3, "data_batch_3"),
        (_misshape_batch_2, "data_batch_2"),
        (_bad_labels_batch_4, "data_batch_4"),
        (_malicious_batch_1, "data_batch_1"),
    ],
)
def test_cifar10_rejects_damaged_folders(cifar_dir, damage, named):
    damage(cifar_dir)
    with pytest.raises(DataError) as caught:
        load("cifar10", str(cifar_dir), "iid")
    message = str(caught.value)
    assert named in message and "\n" not in message
    assert not (cifar_dir / "pwned").exists()


def test_cifar10_refused_global_is_named(cifar_dir):
    _malicious_batch_1(cifar_dir)
    with pytest.raises(DataError, match="refused global (posix|os|nt).system"):
        read_batch(str(cifar_dir / "data_batch_1"))
    assert not (cifar_dir / "pwned").exists()


def test_cifar10_missing_folder(tmp_path):
    missing = tmp_path / "nowhere" / "cifar-10-batches-py"
    with pytest.raises(DataError, match="does not exist") as caught:
        load("cifar10", str(missing), "iid")
    assert str(missing) in str(caught.value)
    with pytest.raises(DataError, match="data.path"):
        load("cifar10", None, "iid")


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "args,overrides,shown",
    [
        (("mnist", None, "iid"), {}, "'mnist'"),
        (("digits", None, "natural"), {}, "'natural'"),
        (("digits", None, "zipf"), {}, "'zipf'"),
        (("synthetic", None, "iid"), {}, "'iid'"),
        (("digits", "/data/digits", "iid"), {}, "scikit-learn"),
        (("digits", None, "iid"), {"num_clients": 0}, "clients.total"),
        (("digits", None, "iid"), {"num_clients": 5000}, "5000"),
        (("digits", None, "dirichlet"), {"alpha": 0.0}, "data.alpha"),
        (("digits", None, "shards"), {"shards_per_client": 0}, "data.shards_per_client"),
        (("digits", None, "iid"), {"test_fraction": 0.0}, "data.test_fraction"),
        (("digits", None, "iid"), {"test_fraction": 1.0}, "data.test_fraction"),
        (("synthetic", None, "natural"), {"test_fraction": 1.5}, "1.5"),
        (("synthetic", None, "natural"), {"synthetic_samples": 1}, "data.test_fraction"),
        (("synthetic", None, "natural"), {"synthetic_dim": 0}, "data.synthetic_dim"),
        (("digits", None, "iid"), {"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_one_line_data_error(args, overrides, shown):
    with pytest.raises(DataError) as caught:
        load(*args, **overrides)
    message = str(caught.value)
    assert shown in message and "expected" in message and "\n" not in message
