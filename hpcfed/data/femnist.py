"""Reader for federated EMNIST in the HDF5 layout TensorFlow Federated publishes.

A folder holds ``fed_emnist_train.h5`` and ``fed_emnist_test.h5`` (62 classes: digits, then upper-
and lower-case letters) and/or ``fed_emnist_digitsonly_train.h5`` and ``_test.h5`` (10 classes,
``data.labels: digits``). In each file the group ``examples/<writer id>`` of every writer holds
``pixels``, float32 (n, 28, 28) in [0, 1] with a white background of 1.0, and ``label``, int32 (n,).

Pixels are kept as uint8 levels ``round(255 p)`` (a quarter of the memory): TFF's pixels come from
8-bit images divided by 255 (LEAF's preprocessing), so the levels lose nothing; any other value is
rounded to the nearest of the 256. The background is not inverted. Writers are read in the order of
their ids. Every problem with a file is a one-line DataError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import h5py
import numpy as np

from hpcfed.errors import DataError, one_line

FILES = {"all": ("fed_emnist_train.h5", "fed_emnist_test.h5"),
         "digits": ("fed_emnist_digitsonly_train.h5", "fed_emnist_digitsonly_test.h5")}
CLASSES = {"all": 62, "digits": 10}   # data.labels -> number of classes (all is the default)
SIDE = 28
IMAGE_SHAPE = (1, SIDE, SIDE)
LAYOUT = "TensorFlow Federated's federated EMNIST: examples/<writer id>/pixels (n, 28, 28) and label (n,)"


class _Malformed(Exception):
    """A problem found inside a file, said with what is expected (a DataError naming the file)."""


def _writer_sizes(examples, names: list[str]) -> np.ndarray:
    """Samples of every writer, checking that each has ``pixels`` (n, 28, 28) and ``label`` (n,)."""
    sizes = np.zeros(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        group = examples[name]
        if not hasattr(group, "keys") or "pixels" not in group or "label" not in group:
            raise _Malformed(f"writer {name!r} lacks pixels or label; expected {LAYOUT}")
        pixels, label = group["pixels"], group["label"]
        if len(pixels.shape) != 3 or pixels.shape[1:] != (SIDE, SIDE) or pixels.dtype.kind != "f":
            raise _Malformed(f"writer {name!r} has pixels {pixels.dtype} {pixels.shape}; "
                             f"expected floats (n, {SIDE}, {SIDE})")
        if label.shape != (pixels.shape[0],) or label.dtype.kind not in "iu":
            raise _Malformed(f"writer {name!r} has label {label.dtype} {label.shape}; "
                             f"expected {pixels.shape[0]} integers")
        sizes[i] = pixels.shape[0]
    return sizes


def _read_writers(examples, names: list[str], sizes: np.ndarray, classes: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 images (n, 1, 28, 28), int64 labels and each sample's position in ``names``."""
    total = int(sizes.sum())
    x = np.empty((total, *IMAGE_SHAPE), dtype=np.uint8)
    y = np.empty(total, dtype=np.int64)
    start = 0
    for name, size in zip(names, sizes):
        group = examples[name]
        pixels = np.asarray(group["pixels"][()], dtype=np.float32)
        label = np.asarray(group["label"][()])
        if size and not (pixels.min() >= 0 and pixels.max() <= 1):   # NaN fails both
            raise _Malformed(f"writer {name!r} has pixels from {pixels.min()} to {pixels.max()}; expected 0..1")
        if size and (label.min() < 0 or label.max() >= classes):
            raise _Malformed(f"writer {name!r} has labels from {label.min()} to {label.max()}; "
                             f"expected 0..{classes - 1}")
        x[start:start + size, 0] = np.rint(pixels * 255)
        y[start:start + size] = label
        start += size
    return x, y, np.repeat(np.arange(len(names), dtype=np.int64), sizes)


def read_file(file: str, classes: int, select: Callable[[np.ndarray], np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The samples of one file: uint8 images (n, 1, 28, 28), int64 labels, and for every sample its
    writer's position in the selection. ``select`` gets every writer's sample count (writers in
    id order) and returns the positions of the writers to read, in the order wanted (default: all);
    the others' pixels are never read."""
    try:
        with h5py.File(file, "r") as handle:
            examples = handle.get("examples")
            if examples is None or not hasattr(examples, "keys"):
                raise _Malformed(f"has no group 'examples'; expected {LAYOUT}")
            names = sorted(examples.keys())
            if not names:
                raise _Malformed(f"has no writers under 'examples'; expected {LAYOUT}")
            sizes = _writer_sizes(examples, names)
            chosen = np.arange(len(names)) if select is None else select(sizes)
            return _read_writers(examples, [names[i] for i in chosen], sizes[chosen], classes)
    except _Malformed as error:
        raise DataError(f"data.path: file {file!r} {error}") from None
    except DataError:
        raise
    except Exception as error:   # not HDF5, truncated, corrupt: h5py raises OSError and others
        raise DataError(f"data.path: file {file!r} is unreadable ({one_line(error)}); expected {LAYOUT}") from None


def femnist_files(path: str | None, labels: str = "all") -> tuple[str, str]:
    """The train and test files of ``labels`` (``all`` or ``digits``) in the folder ``path``."""
    names = FILES[labels]
    expected = f"expected a folder with {' and '.join(names)}"
    if not path:
        raise DataError(f"data.path: {path!r} is empty but femnist needs it; {expected}")
    if not os.path.isdir(path):
        raise DataError(f"data.path: {path!r} does not exist or is not a folder; {expected}")
    missing = [name for name in names if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise DataError(f"data.path: {path!r} lacks {', '.join(missing)}; {expected}")
    return os.path.join(path, names[0]), os.path.join(path, names[1])


def write_femnist(file, writers: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """An HDF5 file in TFF's layout (the inverse of the reader): ``writers`` maps a writer id to its
    ``(pixels, label)``, float32 (n, 28, 28) in [0, 1] and int32 (n,)."""
    with h5py.File(file, "w") as handle:
        examples = handle.create_group("examples")
        for name, (pixels, label) in writers.items():
            group = examples.create_group(name)
            group.create_dataset("pixels", data=np.asarray(pixels, dtype=np.float32))
            group.create_dataset("label", data=np.asarray(label, dtype=np.int32))


def random_writers(counts: list[int], classes: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writers ``f0000_00``, ``f0001_01``, ... with ``counts`` samples of random 8-bit pixels / 255
    and random labels, for tests where no real FEMNIST is at hand."""
    rng = np.random.default_rng(seed)
    return {f"f{i:04d}_{i % 100:02d}": (rng.integers(0, 256, (n, SIDE, SIDE)).astype(np.float32) / 255,
                                        rng.integers(0, classes, n))
            for i, n in enumerate(counts)}
