#!/usr/bin/env bash
# Install a single-machine SLURM (Debian/Ubuntu packages) for the slurm-marked tests.
# Idempotent: exits 0 at once when slurmctld is already installed.
# Needs root (or sudo) and apt; installs no daemon configuration and starts nothing:
# tests/slurm_cluster.py writes its own slurm.conf and starts the daemons itself.
set -euo pipefail

if command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ]; then
    echo "slurm already installed: $( (/usr/sbin/slurmctld -V || slurmctld -V) 2>/dev/null )"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge libpmix2 libpmix-dev >/dev/null
echo "slurm installed: $(/usr/sbin/slurmctld -V)"
