#!/usr/bin/env bash
# The test suite, in tiers (tests/conftest.py): unit tests, end-to-end runs, MPI tests under mpirun
# with 3 ranks, and the SLURM tests (skipped where SLURM is not installed, unless
# HPCFED_REQUIRE_SLURM=1; .ci/install_slurm.sh installs it).
#
#   tests/run.sh          the whole suite (the README's test command and CI's)
#   tests/run.sh --fast   the unit tests only: every layer's own tests, no real run (a minute or two)
#
# The unit tier runs on both cores (pytest-xdist: its tests are independent and in-process); the
# end-to-end tier too, with TEST_WORKERS workers (default 2; each run is one process or mpirun -n 2-5).
# Each tier ends with its slowest tests (--durations), to keep an eye on the suite's time.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,sm}"   # one node: shared memory only (skips ~1 s of network probing)
MPI_RANKS="${MPI_RANKS:-3}"
WORKERS="${TEST_WORKERS:-2}"

case "${1:-}" in
    "") fast=0 ;;
    --fast) fast=1 ;;
    *) echo "tests/run.sh: unknown option '$1'; accepted: --fast (the unit tests only), or nothing (the whole suite)" >&2
       exit 2 ;;
esac

echo "== unit tests"
timeout 900 python -m pytest -q -n "${WORKERS}" --durations=5 -m "not e2e and not mpi and not slurm" tests
[ "${fast}" = 1 ] && exit 0
echo "== end-to-end runs"
timeout 2400 python -m pytest -q -n "${WORKERS}" --durations=15 -m "e2e and not mpi and not slurm" tests
echo "== MPI tests under mpirun -n ${MPI_RANKS}"
timeout 600 mpirun -n "${MPI_RANKS}" python -m pytest -q --only-mpi tests/mpi
echo "== SLURM tests"
timeout 900 python -m pytest -q --durations=5 -m slurm tests
