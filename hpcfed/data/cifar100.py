"""Reader for CIFAR-100 in the standard ``cifar-100-python`` folder format.

The folder holds three pickles: ``train`` (50,000 images) and ``test`` (10,000), each a dict with
``b'data'`` (uint8 rows of 1024 red, 1024 green and 1024 blue values, as CIFAR-10's batches),
``b'fine_labels'`` (0..99) and ``b'coarse_labels'`` (0..19, the superclasses), and ``meta`` with
``b'fine_label_names'`` and ``b'coarse_label_names'``. They are read with CIFAR-10's restricted
unpickler (hpcfed.data.cifar); every problem is a one-line DataError naming the file.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from hpcfed.data.cifar import check_images, check_labels, read_pickle
from hpcfed.errors import DataError

TRAIN, TEST, META = "train", "test", "meta"
CLASSES = {"fine": 100, "coarse": 20}   # data.labels -> number of classes (fine is the default)


def _check_names(file: str, names: object, key: str, count: int) -> None:
    """A one-line DataError unless ``names`` is a list of ``count`` label names."""
    ok = isinstance(names, (list, tuple)) and all(isinstance(n, (bytes, str)) for n in names)
    found = f"{len(names)} names" if ok else type(names).__name__
    if not ok or len(names) != count:
        raise DataError(f"data.path: meta file {file!r} has {key} of {found}; expected {count} names")


def read_split(file: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, 3, 32, 32) and ``labels`` (``fine`` or ``coarse``) int64 (n,) of ``train`` or ``test``."""
    key = f"{labels}_labels"
    data, values = read_pickle(file, ("data", key), kind="file")
    images = check_images(file, data, kind="file")
    return images, check_labels(file, values, len(images), CLASSES[labels], key=key, kind="file")


def read_cifar100(path: str | None, labels: str = "fine") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads ``train`` and ``test`` (and checks ``meta``) from a ``cifar-100-python`` folder.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` with uint8 images (n, 3, 32, 32) and int64 labels,
        fine (0..99) or coarse (0..19) as ``labels`` says.
    """
    expected = "expected a cifar-100-python folder with train, test and meta"
    if not path:
        raise DataError(f"data.path: {path!r} is empty but cifar100 needs it; {expected}")
    if not os.path.isdir(path):
        raise DataError(f"data.path: {path!r} does not exist or is not a folder; {expected}")
    missing = [name for name in (TRAIN, TEST, META) if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise DataError(f"data.path: {path!r} lacks {', '.join(missing)}; {expected}")
    meta = os.path.join(path, META)
    fine, coarse = read_pickle(meta, ("fine_label_names", "coarse_label_names"), kind="meta file")
    _check_names(meta, fine, "fine_label_names", CLASSES["fine"])
    _check_names(meta, coarse, "coarse_label_names", CLASSES["coarse"])
    x_train, y_train = read_split(os.path.join(path, TRAIN), labels)
    x_test, y_test = read_split(os.path.join(path, TEST), labels)
    return x_train, y_train, x_test, y_test


def write_cifar100(folder, images: dict, fine: dict, coarse: dict | None = None, protocol: int = 2):
    """A ``cifar-100-python`` folder in the standard format (the inverse of the reader): ``images``
    maps ``train`` and ``test`` to uint8 (n, 3072) rows, ``fine`` (and ``coarse``; default
    ``fine // 5``) to their labels. Returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for name in (TRAIN, TEST):
        fines = [int(v) for v in fine[name]]
        coarses = [int(v) for v in coarse[name]] if coarse else [v // 5 for v in fines]
        split = {b"filenames": [b"img_%d.png" % i for i in range(len(fines))], b"batch_label": name.encode(),
                 b"fine_labels": fines, b"coarse_labels": coarses, b"data": images[name]}
        with open(os.path.join(folder, name), "wb") as handle:
            pickle.dump(split, handle, protocol=protocol)
    meta = {b"fine_label_names": [b"fine_%d" % i for i in range(CLASSES["fine"])],
            b"coarse_label_names": [b"coarse_%d" % i for i in range(CLASSES["coarse"])]}
    with open(os.path.join(folder, META), "wb") as handle:
        pickle.dump(meta, handle, protocol=protocol)
    return folder


def write_random_cifar100(folder, train: int, test: int, seed: int = 0):
    """A ``cifar-100-python`` folder of ``train`` and ``test`` random images and fine labels, for
    tests and benchmarks where no real CIFAR-100 is at hand; returns the folder."""
    rng = np.random.default_rng(seed)
    sizes = {TRAIN: train, TEST: test}
    images = {name: rng.integers(0, 256, (n, 3072), dtype=np.uint8) for name, n in sizes.items()}
    fine = {name: rng.integers(0, CLASSES["fine"], n) for name, n in sizes.items()}
    return write_cifar100(folder, images, fine)
