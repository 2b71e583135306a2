"""Running the methods of a job set as real runs (tools/compare.py, tools/reproduce.py).

Each method's resolved job is written to DIR/<method>.yaml and run with ``python -m hpcfed.run``
(serially or under mpirun) into DIR/<method>.h5, its output kept in DIR/<method>.log as it comes
(the tool prints each run's round and ETA meanwhile, hpcfed.experiments.watch); a finished run
of the same job found there is reused, a file of another job is never replaced silently. Several
runs can go at once (:func:`run_methods`).
"""
from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import yaml

from hpcfed.assembly.job import build_job
from hpcfed.config import JobConfig
from hpcfed.errors import ConfigError, HpcfedError
from hpcfed.experiments.jobset import load_jobset
from hpcfed.experiments.launch import hpcfed_command
from hpcfed.experiments.watch import Watch
from hpcfed.record.reading import read_results


def select_jobs(jobset: str, methods: str | None, overrides: list[str]) -> dict[str, JobConfig]:
    """The chosen methods' checked jobs (``overrides`` applied after each method's own), in file order."""
    mappings = load_jobset(jobset)
    chosen = [m for m in methods.split(",") if m] if methods else list(mappings)
    for label in chosen:
        if label not in mappings:
            raise ConfigError(f"--methods: {label!r} is not a method of {jobset!r}; accepted: {', '.join(mappings)}")
    jobs = {}
    for label in (m for m in mappings if m in chosen):
        try:
            jobs[label] = build_job(mappings[label], overrides)
        except ConfigError as err:
            raise ConfigError(f"{jobset!r}, method {label!r}: {err} (or leave the method out with --methods)") from None
    if not jobs:
        raise ConfigError(f"--methods {methods!r} names no method; accepted: {', '.join(mappings)}")
    return jobs


def reusable(path: Path, job: JobConfig) -> bool:
    """Whether ``path`` holds a finished run of ``job``; False for no file or an unfinished run of it.
    A file of another job (or not a results file) is an error: it is never replaced without --overwrite."""
    if not path.exists():
        return False
    try:
        attrs = read_results(path)["attrs"]
    except HpcfedError as err:
        raise HpcfedError(f"{err}; pass --overwrite to replace it or choose another --out") from None
    try:
        held = yaml.safe_load(attrs["config_yaml"])
    except (KeyError, yaml.YAMLError) as err:
        raise HpcfedError(f"{str(path)!r} exists and is not an hpcfed results file ({err}); "
                          f"pass --overwrite to replace it or choose another --out") from None
    try:   # read with today's defaults: a job field added since the run was made takes its default
        held = yaml.safe_load(build_job(held).to_yaml())
    except ConfigError:
        pass   # a field since removed or renamed: the comparison below names it
    key = first_difference(held, yaml.safe_load(job.to_yaml()))
    if key is not None:
        raise HpcfedError(f"{str(path)!r} holds a run of another job ({key} differs); "
                          f"pass --overwrite to replace it or choose another --out")
    return attrs.get("status") == "finished"


def first_difference(a, b, prefix: str = "") -> str | None:
    """The first dotted key whose value differs between two nested mappings, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else prefix.rstrip(".")


def run_method(label: str, out: Path, ranks: int, tool: str = "compare", watch: Watch | None = None) -> None:
    """Run ``out``/<label>.yaml into ``out``/<label>.h5, its output kept in <label>.log as it comes (and
    its progress lines shown to ``watch``); a failed run ends the tool."""
    job_file, results, log = out / f"{label}.yaml", out / f"{label}.h5", out / f"{label}.log"
    start = time.perf_counter()
    cmd, env = hpcfed_command([str(job_file), "--out", str(results), "--overwrite"], ranks)
    if watch:
        watch.started((label, out), log)
    with open(log, "w") as sink, tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(cmd, cwd=Path.cwd(), env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            if watch:
                watch.saw((label, out), line)
        proc.wait()
        errors.seek(0)
        stderr = errors.read()
        sink.write(stderr)
    if watch:
        watch.finished((label, out))
    if proc.returncode:
        lines = stderr.replace("\0", "").strip().splitlines()
        said = list(dict.fromkeys(line for line in lines if line.startswith("hpcfed:")))  # its own error lines
        raise SystemExit(f"{tool}: error: method {label!r} failed (exit {proc.returncode}); finished methods are "
                         f"kept in {str(out)!r}, its whole output in {str(log)!r}; it ended with:\n"
                         + "\n".join((said or lines)[-10:]))
    print(f"{tool}: {label}: done in {time.perf_counter() - start:.1f} s", flush=True)


def run_methods(runs: list[tuple[str, Path]], ranks: int, tool: str, parallel: int = 1) -> None:
    """Run every (label, folder) with :func:`run_method`, up to ``parallel`` of them at once, saying
    what they do meanwhile (hpcfed.experiments.watch).

    Each run is its own process with its job's ``train.threads`` torch threads (times ``ranks``
    under mpirun), so ``parallel`` x threads x max(ranks, 1) should not exceed the node's cores; the
    results do not depend on it. After a failure no further run starts; the runs under way finish
    (their results stay reusable) and the first failure ends the tool."""
    check_parallel(parallel)
    with Watch(runs, tool, parallel) as watch:
        if parallel == 1 or len(runs) <= 1:
            for label, out in runs:
                run_method(label, out, ranks, tool, watch)
            return
        stop = threading.Event()   # set by a failure or Ctrl-C: the runs not yet started are skipped

        def one(label: str, out: Path) -> None:
            if stop.is_set():
                return
            try:
                run_method(label, out, ranks, tool, watch)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(max_workers=parallel) as pool:   # leaving it waits for the runs under way
            try:
                futures = [pool.submit(one, label, out) for label, out in runs]
                wait(futures)
            finally:
                stop.set()
    failures = [f.exception() for f in futures if f.exception() is not None]
    if failures:
        raise failures[0]


def check_parallel(parallel: int) -> None:
    """``--parallel`` of the tools that run jobs: a number of runs at once >= 1."""
    if parallel < 1:
        raise HpcfedError(f"--parallel {parallel}: accepted a number of runs at once >= 1")
