"""A finished run reopened as a trained supernet (hpcfed.search.trained): what tools/search.py and
tools/export.py build on."""
from __future__ import annotations

import h5py
import pytest

from hpcfed.errors import HpcfedError
from hpcfed.search.trained import open_run


def test_files_that_hold_no_trained_supernet_are_refused_in_one_line(tmp_path):
    with pytest.raises(HpcfedError, match="does not exist"):
        open_run(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(HpcfedError, match="cannot be read as HDF5"):
        open_run(tmp_path / "text.h5")
    with h5py.File(tmp_path / "running.h5", "w") as f:
        f.attrs["config_yaml"] = "rounds: 1\n"
        f.attrs["status"] = "running"
        f.create_group("eval")
    with pytest.raises(HpcfedError, match="holds no trained supernet"):
        open_run(tmp_path / "running.h5")
