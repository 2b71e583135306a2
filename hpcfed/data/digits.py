"""scikit-learn's 8x8 handwritten digits, read without importing scikit-learn."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from hpcfed.errors import DataError


def read_digits(name: str = "digits") -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: x float32 (N, 1, 8, 8) with values 0..16, y int64 (N,).

    The file that ``sklearn.datasets.load_digits`` reads is read directly: importing scikit-learn
    costs most of a second on every rank. ``name`` is the ``data.name`` the error message names.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data.name: {name!r} needs scikit-learn installed (its digits ship with it); "
                        "expected `pip install scikit-learn`")
    table = np.loadtxt(os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz"),
                       delimiter=",")
    return table[:, :-1].reshape(-1, 1, 8, 8).astype(np.float32), table[:, -1].astype(np.int64)
