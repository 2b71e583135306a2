"""Reader for CIFAR-10 in the standard ``cifar-10-batches-py`` folder format.

The batches are pickles, so they are read with a restricted unpickler that only resolves the few
globals a numpy array needs; any other global (``os.system`` and the like) raises DataError before
it can run. Every problem with the folder or a batch is reported as a one-line DataError naming the
file.
"""

from __future__ import annotations

import _codecs
import os
import pickle

import numpy as np

from hpcfed.errors import DataError, one_line

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10

_numpy_core = getattr(np, "_core", None) or np.core
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_core.multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numpy_core.numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_core.numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays."""

    def find_class(self, module: str, name: str) -> object:
        """Returns an allowed global or raises DataError naming the refused one."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(f"refused global {module}.{name}") from None


class _MissingKey(Exception):
    """A key the dict in a pickle lacks."""


def _field(batch: dict, key: str) -> object:
    """Looks up ``key`` in a batch dict whose keys are bytes (standard) or str."""
    if not isinstance(batch, dict):
        raise TypeError(f"the pickle holds a {type(batch).__name__}, not a dict")
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise _MissingKey(key)


def read_pickle(file: str, keys: tuple[str, ...], kind: str = "batch") -> list:
    """The values of ``keys`` in the pickled dict ``file`` (bytes keys, as the CIFAR folders have,
    or str), read with the restricted unpickler. A file that is unsafe, unreadable (truncated,
    corrupt) or lacks a key gives a one-line DataError naming the ``kind`` of file and its path."""
    wanted = " and ".join(f"b'{key}'" for key in keys)
    try:
        with open(file, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
        return [_field(batch, key) for key in keys]
    except DataError as error:
        raise DataError(f"data.path: {kind} {file!r} is unsafe: {error}; expected numpy arrays only") from None
    except _MissingKey as error:
        raise DataError(f"data.path: {kind} {file!r} lacks b{str(error.args[0])!r}; expected a pickled dict "
                        f"with {wanted}") from None
    except Exception as error:  # truncated or corrupt pickles raise many different types
        raise DataError(
            f"data.path: {kind} {file!r} is unreadable ({one_line(error)}); expected a pickled dict with {wanted}"
        ) from None


def check_images(file: str, data: object, kind: str = "batch") -> np.ndarray:
    """``data`` as uint8 images (n, 3, 32, 32), or a one-line DataError unless it is uint8 (n, 3072)."""
    pixels = int(np.prod(IMAGE_SHAPE))
    is_array = isinstance(data, np.ndarray)
    if not (is_array and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == pixels):
        found = f"{data.dtype} {data.shape}" if is_array else type(data).__name__
        raise DataError(f"data.path: {kind} {file!r} has data {found}; expected uint8 (n, {pixels})")
    return data.reshape(-1, *IMAGE_SHAPE)


def check_labels(file: str, labels: object, n: int, classes: int, key: str = "labels", kind: str = "batch"
                 ) -> np.ndarray:
    """``labels`` as int64 (n,), or a one-line DataError unless they are ``n`` integers in 0..classes-1."""
    try:
        labels = np.asarray(labels)
    except Exception:  # a ragged or otherwise odd object
        labels = np.asarray(None)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"data.path: {kind} {file!r} has {key} {labels.dtype} {labels.shape}; expected {n} integers"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(
            f"data.path: {kind} {file!r} has {key} from {labels.min()} to {labels.max()}; "
            f"expected 0..{classes - 1}"
        )
    return labels.astype(np.int64)


def read_batch(file: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads one batch file and returns its images as uint8 (n, 3, 32, 32) and labels as int64 (n,)."""
    data, labels = read_pickle(file, ("data", "labels"))
    images = check_images(file, data)
    return images, check_labels(file, labels, len(images), NUM_CLASSES)


def read_cifar10(path: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads the five training batches and the test batch from a ``cifar-10-batches-py`` folder.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` with uint8 images (n, 3, 32, 32) and int64 labels.
    """
    expected = "expected a folder with data_batch_1..5 and test_batch"
    if not path:
        raise DataError(f"data.path: {path!r} is empty but cifar10 needs it; {expected}")
    if not os.path.isdir(path):
        raise DataError(f"data.path: {path!r} does not exist or is not a folder; {expected}")
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise DataError(f"data.path: {path!r} lacks {', '.join(missing)}; {expected}")
    x_train, y_train = read_pool([os.path.join(path, name) for name in TRAIN_BATCHES])
    x_test, y_test = read_batch(os.path.join(path, TEST_BATCH))
    return x_train, y_train, x_test, y_test


def read_pool(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The batches of ``files`` as one pool of images and labels. The pool is allocated once, sized
    by the first batch (the standard batches are all of one size), and each batch is copied in and
    freed before the next is read, so the unpickler's buffers are reused rather than kept."""
    pool, fill, labels = None, 0, []
    for file in files:
        x, y = read_batch(file)
        if pool is None:
            pool = np.empty((len(files) * len(x), *x.shape[1:]), dtype=x.dtype)
        if fill + len(x) > len(pool):   # a batch larger than the first (not a standard folder)
            pool = np.concatenate([pool[:fill], x])
        else:
            pool[fill:fill + len(x)] = x
        fill += len(x)
        labels.append(y)
        del x
    return pool[:fill], np.concatenate(labels)


def write_cifar10_batch(file, images: np.ndarray, labels, protocol: int = 2) -> None:
    """Write one batch in the ``cifar-10-batches-py`` format: ``images`` uint8 (n, 3072) rows of 1024
    red, 1024 green and 1024 blue values, ``labels`` n ints in 0..9 (the inverse of the reader)."""
    batch = {b"batch_label": b"hpcfed batch", b"labels": [int(v) for v in labels], b"data": images,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    with open(file, "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)


def write_random_cifar10(folder, per_batch: int, seed: int = 0):
    """A ``cifar-10-batches-py`` folder of random images (5 train batches and a test batch), for
    tests and benchmarks where no real CIFAR-10 is at hand; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate((TEST_BATCH, *TRAIN_BATCHES)):
        rng = np.random.default_rng([seed, i])
        write_cifar10_batch(os.path.join(folder, name), rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                            rng.integers(0, NUM_CLASSES, per_batch))
    return folder
