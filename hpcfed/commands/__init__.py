"""The programs of ``hpcfed COMMAND`` (hpcfed.cli), one module each with ``main(argv) -> exit status``:
the analysis tools (summarize, plot, compare, reproduce, search, export, dse) and the benchmarks
(bench_*). The files in the checkout's tools/ are launchers of the same modules."""
