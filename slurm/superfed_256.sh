#!/bin/bash
# SuperFed with 256 clients on a SLURM cluster: one MPI rank per task running `python -m hpcfed.run`.
#
#   sbatch slurm/superfed_256.sh                                      # the #SBATCH defaults below
#   cd /scratch/me/run1 && sbatch /path/to/hpcfed/slurm/superfed_256.sh   # from any folder: results land there
#   sbatch --nodes=1 --ntasks-per-node=4 slurm/superfed_256.sh        # command-line options win
#   HPCFED_DRY_RUN=1 sbatch --wait slurm/superfed_256.sh              # validate only, exit code back
#   HPCFED_SET="rounds=2 clients.total=16" HPCFED_LAUNCHER=mpirun sbatch slurm/superfed_256.sh
#
# sbatch passes the submitting shell's environment to the job, so these variables are read here:
#   HPCFED_JOB       job file or shipped job name (default superfed_256: the job file installed with
#                    hpcfed, unless the submit folder holds superfed_256 or superfed_256.yaml, which
#                    wins; `python -m hpcfed.run --list-jobs` lists the names); a path is relative to
#                    the submit folder; set but empty: no job file, the program's built-in default job
#   HPCFED_OUT       HDF5 results file (default runs/superfed_256-$SLURM_JOB_ID.h5); its folder is
#                    created if missing
#   HPCFED_SET       extra overrides, space-separated key=value words, each passed as `--set key=value`
#   HPCFED_LAUNCHER  `srun` (default: srun --mpi=pmix --kill-on-bad-exit=1) or `mpirun` (Open MPI's
#                    mpirun, which reads the SLURM allocation itself)
#   HPCFED_MPIRUN_ARGS  extra mpirun options, space-separated (e.g. "--bind-to none"); default none
#   HPCFED_PYTHON    the Python command (default `python`; may carry options, e.g. "python -X faulthandler")
#   HPCFED_VENV      optional virtual environment to activate before anything else
#   HPCFED_DRY_RUN   1: run the program once, on one task, with --dry-run (validate job, data and
#                    output path, no training) and print "validation passed" if it exits 0
#
# Exit status: that of the program (srun/mpirun) -- a failing rank fails the job and `sbatch --wait`.
# OMP_NUM_THREADS is set from --cpus-per-task. The job runs in the submit folder ($SLURM_SUBMIT_DIR).
#
# Requeue: SLURM sends this shell SIGUSR1 two minutes before the time limit (--signal=B:USR1@120;
# `scancel --batch --signal=USR1 JOB` does the same by hand). The shell passes it to the program,
# whose rank 0 saves a checkpoint (OUT.ckpt) of the last completed round and stops; the shell then
# requeues the job. A (re)started job whose results file and checkpoint exist continues with --resume,
# so the requeued job picks up where it stopped, with the same job id and results file.
#
#SBATCH --job-name=hpcfed-superfed256
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=2
#SBATCH --time=02:00:00
#SBATCH --output=hpcfed-superfed256-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue

set -euo pipefail

if [ -n "${HPCFED_VENV:-}" ]; then
    set +u  # activate scripts may read unset variables
    # shellcheck disable=SC1091
    source "${HPCFED_VENV}/bin/activate"
    set -u
fi

cd "${SLURM_SUBMIT_DIR:-.}"

job_id="${SLURM_JOB_ID:-local}"
job_file="${HPCFED_JOB-superfed_256}"
out_file="${HPCFED_OUT:-runs/superfed_256-${job_id}.h5}"
launcher="${HPCFED_LAUNCHER:-srun}"
read -r -a python_cmd <<< "${HPCFED_PYTHON:-python}"
read -r -a overrides <<< "${HPCFED_SET:-}"
read -r -a mpirun_args <<< "${HPCFED_MPIRUN_ARGS:-}"
cpus_per_task="${SLURM_CPUS_PER_TASK:-1}"
ntasks="${SLURM_NTASKS:-1}"

export OMP_NUM_THREADS="${cpus_per_task}"
mkdir -p "$(dirname "${out_file}")"

args=()
if [ -n "${job_file}" ]; then
    args+=("${job_file}")
fi
args+=(--out "${out_file}")
resuming=no
if [ -f "${out_file}" ] && [ -f "${out_file}.ckpt" ]; then
    args+=(--resume)      # a requeued (or resubmitted) job continues its own run
    resuming=yes
fi
for kv in "${overrides[@]}"; do
    args+=(--set "${kv}")
done

if [ "${HPCFED_DRY_RUN:-0}" = "1" ]; then
    mode="dry-run"
else
    mode="${launcher}"
fi
echo "hpcfed: job ${job_id} nodes=${SLURM_JOB_NUM_NODES:-1} (${SLURM_JOB_NODELIST:-$(hostname)})" \
     "tasks=${ntasks} cpus/task=${cpus_per_task} mode=${mode} job=${job_file:-(built-in)} out=${out_file}" \
     "set=[${HPCFED_SET:-}] restart=${SLURM_RESTART_COUNT:-0} resume=${resuming}"

if [ "${mode}" = "dry-run" ]; then
    # One task, the batch shell itself: validation needs no MPI launcher.
    "${python_cmd[@]}" -m hpcfed.run "${args[@]}" --dry-run
    echo "hpcfed: dry run: validation passed"
    exit 0
fi

case "${launcher}" in
    srun)
        # srun of Slurm 22.05 does not inherit --cpus-per-task from the allocation: pass it on.
        srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task="${cpus_per_task}" \
            "${python_cmd[@]}" -m hpcfed.run "${args[@]}" &
        ;;
    mpirun)
        mpirun -n "${ntasks}" -x OMP_NUM_THREADS ${mpirun_args[@]+"${mpirun_args[@]}"} \
            "${python_cmd[@]}" -m hpcfed.run "${args[@]}" &
        ;;
    *)
        echo "hpcfed: HPCFED_LAUNCHER must be srun or mpirun, not '${launcher}'" >&2
        exit 2
        ;;
esac
launcher_pid=$!
requeue=0
trap 'requeue=1; echo "hpcfed: SIGUSR1: checkpoint, stop and requeue"; kill -USR1 "${launcher_pid}" 2>/dev/null || true' USR1

# `wait` returns early when the trap runs; wait again until the launcher has really ended.
set +e
wait "${launcher_pid}"
rc=$?
while kill -0 "${launcher_pid}" 2>/dev/null; do
    wait "${launcher_pid}"
    rc=$?
done
set -e

if [ "${requeue}" = "1" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    scontrol requeue "${SLURM_JOB_ID}"
    echo "hpcfed: job ${job_id} requeued; it resumes from ${out_file}.ckpt"
    exit 0
fi
if [ "${rc}" -ne 0 ]; then
    echo "hpcfed: job ${job_id} failed with exit status ${rc}" >&2
    exit "${rc}"
fi
# Trust the results file, not only the launcher: a step that never launched can still end with 0.
status=$("${python_cmd[@]}" -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r").attrs["status"])' \
         "${out_file}" 2>/dev/null || echo "unreadable")
if [ "${status}" != "finished" ]; then
    echo "hpcfed: job ${job_id} failed: the launcher ended with 0 but ${out_file} has status '${status}'" >&2
    exit 1
fi
echo "hpcfed: job ${job_id} finished: ${out_file}"
