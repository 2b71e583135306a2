#!/usr/bin/env bash
# The whole test suite: serial tests, MPI tests under mpirun with 3 ranks, and the SLURM tests
# (skipped where SLURM is not installed, unless HPCFED_REQUIRE_SLURM=1; .ci/install_slurm.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,sm}"   # one node: shared memory only (skips ~1 s of network probing)
MPI_RANKS="${MPI_RANKS:-3}"

echo "== serial and end-to-end tests"
timeout 1800 python -m pytest -q -m "not slurm and not mpi" tests
echo "== MPI tests under mpirun -n ${MPI_RANKS}"
timeout 600 mpirun -n "${MPI_RANKS}" python -m pytest -q --only-mpi tests/test_mpi.py
echo "== SLURM tests"
timeout 900 python -m pytest -q -m slurm tests
