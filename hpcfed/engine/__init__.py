"""The round loop, written once for every strategy: the server on rank 0 (plan, backend, merge,
observe, log), the controller that decides how many rounds to play, the cost model and ledger, the
backends and the client host on the other ranks."""
