"""FEMNIST (TFF's HDF5 layout) and CIFAR-100 (cifar-100-python) from small files the tests write in
exactly those formats: shapes, labels, class counts, the natural partition (one client per writer),
bad files (one-line errors) and a short run on each."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch

from hpcfed.data.femnist import FILES, random_writers, write_femnist
from hpcfed.data.partition import choose_groups
from hpcfed.errors import DataError
from tests.fakes import WRITERS, write_cifar100, write_fed_emnist
from tests.loading import load_data


def load(name, path, partition="iid", num_clients=3, **overrides):
    args = dict(alpha=0.5, shards_per_client=2, num_clients=num_clients, test_fraction=0.2, seed=0)
    args.update(overrides)
    return load_data(name, str(path), partition, **args)


def one_line_error(call, *named) -> str:
    with pytest.raises(DataError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(n in message for n in named), message
    return message


def rows(x: torch.Tensor) -> list[bytes]:
    return [row.tobytes() for row in x.numpy().reshape(len(x), -1)]


# ---------------------------------------------------------------- CIFAR-100


@pytest.fixture()
def cifar100_dir(tmp_path):
    return write_cifar100(tmp_path / "cifar-100-python")


def read_pickle_file(file):
    with open(file, "rb") as handle:
        return pickle.load(handle, encoding="bytes")


def test_cifar100_fine_labels_by_default(cifar100_dir):
    data = load("cifar100", cifar100_dir)
    assert data.name == "cifar100" and data.input_shape == (3, 32, 32) and data.num_classes == 100
    assert data.train_inputs.dtype == torch.uint8 and data.train_inputs.shape == (60, 3, 32, 32)
    assert data.x_test.dtype == torch.float32 and data.x_test.shape == (20, 3, 32, 32)
    test = read_pickle_file(cifar100_dir / "test")
    assert data.y_test.tolist() == test[b"fine_labels"]
    assert np.array_equal(data.test_inputs.numpy().reshape(20, -1), test[b"data"])   # held as stored
    train = read_pickle_file(cifar100_dir / "train")
    assert sorted(data.y_train.tolist()) == sorted(train[b"fine_labels"])
    assert torch.equal(load("cifar100", cifar100_dir, labels="fine").y_test, data.y_test)


def test_cifar100_coarse_labels(cifar100_dir):
    data = load("cifar100", cifar100_dir, labels="coarse")
    assert data.num_classes == 20
    test = read_pickle_file(cifar100_dir / "test")
    assert data.y_test.tolist() == test[b"coarse_labels"] and max(test[b"coarse_labels"]) < 20
    assert torch.equal(data.x_test, load("cifar100", cifar100_dir).x_test)   # same images


def test_cifar100_is_normalised_per_channel_on_the_way_out(cifar100_dir):
    data = load("cifar100", cifar100_dir, num_clients=1)
    x = data.x_train.double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)
    x0, _ = data.client_data(0)
    assert x0.dtype == torch.float32 and torch.equal(x0, data.x_train[torch.from_numpy(data.client_samples(0).copy())])


def _rewrite(folder, name, **changes):
    content = read_pickle_file(folder / name)
    for key, value in changes.items():
        if value is None:
            del content[key.encode()]
        else:
            content[key.encode()] = value
    with open(folder / name, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


class Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


CIFAR100_DAMAGE = [
    ("missing meta", lambda d: (d / "meta").unlink(), "meta"),
    ("missing test", lambda d: (d / "test").unlink(), "test"),
    ("truncated train", lambda d: (d / "train").write_bytes((d / "train").read_bytes()[:4000]), "train"),
    ("not a pickle", lambda d: (d / "test").write_bytes(b"not a pickle at all"), "test"),
    ("no fine labels", lambda d: _rewrite(d, "train", fine_labels=None), "b'fine_labels'"),
    ("images of the wrong shape", lambda d: _rewrite(d, "test", data=np.zeros((20, 3000), np.uint8)), "(20, 3000)"),
    ("float images", lambda d: _rewrite(d, "test", data=np.zeros((20, 3072), np.float32)), "float32"),
    ("labels out of range", lambda d: _rewrite(d, "test", fine_labels=[100] * 20), "0..99"),
    ("too few labels", lambda d: _rewrite(d, "train", fine_labels=[0, 1]), "60 integers"),
    ("meta of seven names", lambda d: _rewrite(d, "meta", fine_label_names=[b"a"] * 7), "expected 100 names"),
    ("a pickle that runs code", lambda d: _rewrite(d, "train", data=Shell(d / "pwned")), "refused global"),
]


@pytest.mark.parametrize("what,damage,named", CIFAR100_DAMAGE, ids=[c[0] for c in CIFAR100_DAMAGE])
def test_cifar100_bad_files_give_one_line_errors(cifar100_dir, what, damage, named):
    damage(cifar100_dir)
    one_line_error(lambda: load("cifar100", cifar100_dir), "data.path", named)
    assert not (cifar100_dir / "pwned").exists()


def test_cifar100_missing_folder(tmp_path):
    one_line_error(lambda: load("cifar100", tmp_path / "none"), "does not exist", "cifar-100-python")
    one_line_error(lambda: load_data("cifar100", None, "iid", 0.5, 2, 3, 0.2, 0), "data.path")


# ---------------------------------------------------------------- FEMNIST


@pytest.fixture()
def femnist_dir(tmp_path):
    return write_fed_emnist(tmp_path / "fed_emnist")


def writer_samples(folder, labels="all", file=0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with h5py.File(folder / FILES[labels][file], "r") as f:
        return {w: (f["examples"][w]["pixels"][()], f["examples"][w]["label"][()]) for w in f["examples"]}


def test_femnist_natural_partition_gives_one_client_per_writer(femnist_dir):
    writers = {w: s for w, s in writer_samples(femnist_dir).items() if len(s[1])}   # one writer has none
    data = load("femnist", femnist_dir, "natural", num_clients=len(writers))
    assert data.num_classes == 62 and data.input_shape == (1, 28, 28)
    assert data.train_inputs.dtype == torch.uint8
    assert sorted(data.samples_per_client()) == sorted(len(y) for _, y in writers.values())
    by_writer = {}
    for k in range(data.num_clients):
        rows_k = data.client_samples(k)
        held = data.train_inputs[torch.from_numpy(rows_k.copy())]
        by_writer[k] = (held.numpy()[:, 0], data.y_train[torch.from_numpy(rows_k.copy())].numpy())
    for pixels, label in writers.values():   # every writer is exactly one client, images and labels
        matches = [k for k, (x, y) in by_writer.items()
                   if np.array_equal(x, np.rint(pixels * 255).astype(np.uint8)) and np.array_equal(y, label)]
        assert len(matches) == 1
    test = writer_samples(femnist_dir, file=1)
    assert len(data.y_test) == sum(len(y) for _, y in test.values()) and data.x_test.shape[1:] == (1, 28, 28)


def test_femnist_pixels_are_kept_as_their_8_bit_levels(femnist_dir):
    data = load("femnist", femnist_dir, "iid", num_clients=2)
    pixels = np.concatenate([p for p, _ in writer_samples(femnist_dir).values()])
    assert np.array_equal(np.sort(data.train_inputs.numpy().ravel()), np.sort(np.rint(pixels * 255).ravel()))
    assert np.allclose(np.sort(data.train_inputs.numpy().ravel() / 255), np.sort(pixels.ravel()), atol=1e-7)


def test_femnist_fewer_clients_than_writers_take_a_seeded_prefix(femnist_dir):
    five = load("femnist", femnist_dir, "natural", num_clients=5)
    two = load("femnist", femnist_dir, "natural", num_clients=2)
    assert len(two.y_train) == two.samples_per_client().sum() < len(five.y_train)
    for k in range(2):   # clients 0 and 1 are the same writers either way
        x2, y2 = two.client_data(k)
        assert torch.equal(two.train_inputs[torch.from_numpy(two.client_samples(k).copy())],
                           five.train_inputs[torch.from_numpy(five.client_samples(k).copy())])
        assert torch.equal(y2, five.client_data(k)[1])
    other = load("femnist", femnist_dir, "natural", num_clients=5, seed=1)
    assert sorted(other.samples_per_client()) == sorted(five.samples_per_client())
    assert not np.array_equal(other.samples_per_client(), five.samples_per_client())


def test_femnist_natural_partition_needs_enough_writers(femnist_dir):
    one_line_error(lambda: load("femnist", femnist_dir, "natural", num_clients=6), "clients.total", "5 writers")
    with pytest.raises(DataError, match="from 1 to 3"):
        choose_groups(np.array([0, 4, 1, 2]), 4, np.random.default_rng(0))


def test_femnist_any_partition_over_the_pooled_samples(femnist_dir):
    total = sum(WRITERS)
    for partition in ("iid", "dirichlet", "shards"):
        data = load("femnist", femnist_dir, partition, num_clients=4)
        assert int(data.client_offsets[-1]) == len(data.y_train) == total
        assert np.array_equal(np.sort(data.client_indices), np.arange(total))


def test_femnist_server_validation_comes_from_the_writers_samples(femnist_dir):
    data = load("femnist", femnist_dir, "natural", num_clients=5, server_val_fraction=0.3)
    assert len(data.y_val) > 0 and len(data.y_val) + len(data.y_train) == sum(WRITERS)
    assert data.x_val.dtype == torch.float32 and data.val_inputs.dtype == torch.uint8
    assert (data.samples_per_client() > 0).all()
    one_line_error(lambda: load("femnist", femnist_dir, "natural", num_clients=5, server_val_fraction=0.9),
                   "data.server_val_fraction", "0.9")


def test_femnist_digits_only_files(tmp_path):
    folder = write_fed_emnist(tmp_path / "digits", labels="digits", classes=10)
    data = load("femnist", folder, "natural", num_clients=5, labels="digits")
    assert data.num_classes == 10 and int(data.y_train.max()) < 10
    one_line_error(lambda: load("femnist", folder), "fed_emnist_train.h5")   # the 62-class files are not there


def _write(folder, writers, file=0, labels="all"):
    write_femnist(folder / FILES[labels][file], writers)


def _h5(folder, build, file=0):
    with h5py.File(folder / FILES["all"][file], "w") as f:
        build(f)


def _bad_writer(**datasets):
    def build(f):
        group = f.create_group("examples").create_group("f0000_00")
        for key, value in datasets.items():
            group.create_dataset(key, data=value)
    return build


PIXELS, LABEL = np.zeros((2, 28, 28), np.float32), np.zeros(2, np.int32)
FEMNIST_DAMAGE = [
    ("missing test file", lambda d: (d / FILES["all"][1]).unlink(), "fed_emnist_test.h5"),
    ("truncated train file", lambda d: (d / FILES["all"][0]).write_bytes((d / FILES["all"][0]).read_bytes()[:3000]),
     "truncated"),
    ("not HDF5", lambda d: (d / FILES["all"][1]).write_bytes(b"plain text, not HDF5"), "fed_emnist_test.h5"),
    ("no examples group", lambda d: _h5(d, lambda f: f.create_group("snippets")), "no group 'examples'"),
    ("no writers", lambda d: _h5(d, lambda f: f.create_group("examples")), "no writers"),
    ("writer without labels", lambda d: _h5(d, _bad_writer(pixels=PIXELS)), "lacks pixels or label"),
    ("pixels of the wrong shape", lambda d: _h5(d, _bad_writer(pixels=np.zeros((2, 28, 27), np.float32),
                                                               label=LABEL)), "(2, 28, 27)"),
    ("integer pixels", lambda d: _h5(d, _bad_writer(pixels=PIXELS.astype(np.uint8), label=LABEL)), "uint8"),
    ("labels of the wrong shape", lambda d: _h5(d, _bad_writer(pixels=PIXELS, label=np.zeros(3, np.int32))),
     "label int32 (3,)"),
    ("float labels", lambda d: _h5(d, _bad_writer(pixels=PIXELS, label=LABEL.astype(np.float32))), "float32"),
    ("labels out of range", lambda d: _h5(d, _bad_writer(pixels=PIXELS, label=np.array([0, 62], np.int32))),
     "0..61"),
    ("pixels above 1", lambda d: _h5(d, _bad_writer(pixels=PIXELS + 255, label=LABEL)), "0..1"),
    ("NaN pixels", lambda d: _h5(d, _bad_writer(pixels=PIXELS * np.nan, label=LABEL)), "nan"),
]


@pytest.mark.parametrize("what,damage,named", FEMNIST_DAMAGE, ids=[c[0] for c in FEMNIST_DAMAGE])
def test_femnist_bad_files_give_one_line_errors(femnist_dir, what, damage, named):
    damage(femnist_dir)
    for partition in ("natural", "iid"):
        one_line_error(lambda: load("femnist", femnist_dir, partition, num_clients=1), "data.path", named)


def test_femnist_digits_labels_are_checked_against_ten_classes(tmp_path):
    folder = write_fed_emnist(tmp_path / "digits", labels="digits", classes=10)
    _write(folder, random_writers([3, 3], 62, seed=5), labels="digits")   # letters in the digits-only file
    one_line_error(lambda: load("femnist", folder, labels="digits"), "0..9")


def test_femnist_missing_folder(tmp_path):
    one_line_error(lambda: load("femnist", tmp_path / "none"), "does not exist", "fed_emnist_train.h5")


# ---------------------------------------------------------------- options that do not fit


@pytest.mark.parametrize("name,partition,labels,named", [
    ("cifar10", "iid", "coarse", "data.labels"),
    ("digits", "iid", "fine", "data.labels"),
    ("cifar100", "iid", "digits", "data.labels"),
    ("femnist", "iid", "coarse", "data.labels"),
    ("cifar100", "natural", "", "data.partition"),
    ("femnist", "zipf", "", "data.partition"),
])
def test_options_that_do_not_fit_the_data_set(tmp_path, name, partition, labels, named):
    path = None if name == "digits" else str(tmp_path)
    one_line_error(lambda: load_data(name, path, partition, 0.5, 2, 3, 0.2, 0, labels=labels), named)


# ---------------------------------------------------------------- short runs
