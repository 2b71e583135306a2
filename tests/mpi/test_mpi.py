"""MPI tests, run under ``mpirun -n K python -m pytest --only-mpi`` (any K >= 2; CI uses 3).

Every test is collective: all ranks run it. Outer timeouts in the runner guard against hangs.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from hpcfed.round.aggregate import add_term, add_weight, divide_keep, fixed_weight, to_fixed
from hpcfed.runtime.comm import TAG_WEIGHTS, Comm
from tests.launch import TINY

pytestmark = pytest.mark.mpi(min_size=2)


def test_fused_reduction_is_the_exact_sum_of_every_worker():
    from mpi4py import MPI
    comm = Comm(MPI.COMM_WORLD)
    p = 5
    acc_sum = torch.zeros(p, dtype=torch.int64)
    if comm.rank > 0:   # worker r trained elements r-1, r-1 + (size-1), ... with value r and weight r
        index = torch.arange(comm.rank - 1, p, comm.size - 1)
        add_term(acc_sum, index, torch.full((len(index),), float(comm.rank)), float(comm.rank))
    fused = comm.reduce_sum(acc_sum.numpy())
    if comm.rank == 0:   # rank 0 knows the plan, so it adds the denominators itself
        acc_weight = torch.zeros(p, dtype=torch.int64)
        for r in comm.workers:
            add_weight(acc_weight, torch.arange(r - 1, p, comm.size - 1), fixed_weight(float(r)))
        new = divide_keep(torch.from_numpy(fused), acc_weight, torch.full((p,), -1.0))
        expected = [float(r) for r in [(e % (comm.size - 1)) + 1 for e in range(p)]]
        assert new.tolist() == expected
        assert fused.tolist() == to_fixed(torch.tensor(expected) ** 2).tolist()


def test_slice_values_travel_with_isend_irecv():
    from mpi4py import MPI
    comm = Comm(MPI.COMM_WORLD)
    p = 37
    flat = np.arange(p, dtype=np.float32)
    masks = {w: (np.arange(p) % w) == 0 for w in comm.workers}
    if comm.rank == 0:
        comm.send_to_workers({w: [(flat[m], TAG_WEIGHTS)] for w, m in masks.items()})
    else:
        mine = masks[comm.rank]
        values = np.empty(int(mine.sum()), np.float32)
        comm.recv_from_server([(values, TAG_WEIGHTS)])
        assert np.array_equal(values, flat[mine])


@pytest.mark.parametrize("strategy,batch_clients", [("superfed", 1), ("fedavg", 1), ("heterofl", 1), ("fedavg", 3),
                                                    ("heterofl", 2), ("fedrolex", 2), ("feddropout", 1),
                                                    ("fedsup", 1), ("efedsup", 1), ("fjord", 1),
                                                    ("ifedavg", 1), ("ifedavg", 2)])
def test_a_job_over_all_ranks_equals_the_same_job_in_one_process(mpi_tmp_path, strategy, batch_clients):
    from mpi4py import MPI

    from hpcfed.run import main
    args = [*TINY, "--set", f"strategy.name={strategy}", "--set", "model.width_choices=[0.5,1.0]",
            "--set", f"train.batch_clients={batch_clients}"]
    name = f"{strategy}-{batch_clients}"
    world_out, self_out = mpi_tmp_path / f"{name}-world.h5", mpi_tmp_path / f"{name}-self.h5"
    assert main([*args, "--out", str(world_out)], Comm(MPI.COMM_WORLD)) == 0
    if MPI.COMM_WORLD.Get_rank() == 0:
        assert main([*args, "--out", str(self_out)], Comm(MPI.COMM_SELF)) == 0
        with h5py.File(world_out, "r") as a, h5py.File(self_out, "r") as b:
            assert a.attrs["world_size"] == MPI.COMM_WORLD.Get_size() and b.attrs["world_size"] == 1
            assert a.attrs["final_model_sha256"] == b.attrs["final_model_sha256"]
            np.testing.assert_array_equal(a["eval/accuracy"][()], b["eval/accuracy"][()])
            assert (a["clients/rank"][()][a["clients/made_deadline"][()]] >= 1).all()
            assert a["rounds/mpi_bytes"][()].min() > 0
    MPI.COMM_WORLD.Barrier()
