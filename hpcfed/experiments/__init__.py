"""Several runs: job sets (a base job and the methods compared), running their methods as real
programs, one at a time or in parallel, and launching ``python -m hpcfed.run`` under ``mpirun``."""
