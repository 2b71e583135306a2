"""The tools in tools/ run end to end at a tiny size and print sane figures."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import pytest

from hpcfed.assembly.job import load_job
from hpcfed.record.comparison import COMPARISON_COLUMNS
from hpcfed.record.reading import read_results
from tests.launch import MPI_ENV, ROOT

SMALL_MODEL = ["--set", "model.stem=4", "--set", "model.widths=[4,8]", "--set", "model.depths=[1,1]"]


def run_tool(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **MPI_ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_bench_overhead_reports_overhead_and_memory_per_population():
    out = run_tool("tools/bench_overhead.py", "--populations", "100,5000", "--per-round", "20", "--rounds", "2",
                   "--ranks", "2", *SMALL_MODEL)
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+20\s", line)]
    assert [r[0] for r in rows] == ["100", "5000"]
    for clients, per_round, round_s, train_s, overhead, eval_share, peaks, ratio in rows:
        assert 0 <= float(eval_share.rstrip("%")) <= float(overhead.rstrip("%"))
        assert 0 < float(train_s) <= float(round_s)
        assert 0 <= float(overhead.rstrip("%")) < 100
        assert len(peaks.split("/")) == 2 and all(float(m) > 10 for m in peaks.split("/"))   # MiB, 2 ranks
        assert float(ratio.rstrip("x")) > 0
    assert rows[0][-1] == "1.000x"


def test_bench_dropout_prints_r_against_measured_step_ratio():
    out = run_tool("tools/bench_dropout.py", "--passes", "1", "--steps", "2", "--bound", "--clock", "cpu", *SMALL_MODEL)
    rows = {line[:14].strip(): line[14:].split() for line in out.splitlines() if line.startswith(("uniform", "middles",
                                                                                               "stages", "random"))}
    assert len(rows) == 13
    r, time, q25, q75, bound, ms, rates = rows["uniform 0"]
    assert (r, time) == ("1.000", "1.000") and rates == "0,0,0,0,0"
    assert float(rows["uniform 0.75"][0]) < float(rows["uniform 0.25"][0]) < 1
    assert all(float(row[1]) > 0 and float(row[4]) > 0 for row in rows.values())


def test_bench_comm_reports_mpi_bytes_against_slice_needs():
    out = run_tool("tools/bench_comm.py", "--ranks", "2", "--rounds", "2", *SMALL_MODEL)
    rows = [line for line in out.splitlines() if re.search(r"\s2\s+[\d,]+\s+[\d,]+\s+[\d.]+$", line)]
    assert len(rows) == 3
    for line in rows:
        mpi, need, ratio = line.split()[-3:]
        mpi, need = int(mpi.replace(",", "")), int(need.replace(",", ""))
        assert need > 0 and mpi >= need and float(ratio) == pytest.approx(mpi / need, abs=0.01)


def test_bench_memory_reports_peak_memory_per_rank_with_and_without_cifar10():
    out = run_tool("tools/bench_memory.py", "--ranks", "2", "--per-batch", "50", *SMALL_MODEL)
    rows = {line[:36].strip(): line[36:].split()[0] for line in out.splitlines()
            if line.startswith(("digits", "cifar10"))}
    assert set(rows) == {"digits (floor)", "cifar10, 300 random images", "cifar10 above the floor"}
    assert all(len(v.split("/")) == 2 for v in rows.values())
    assert all(float(m) > 10 for key in ("digits (floor)", "cifar10, 300 random images")
               for m in rows[key].split("/"))


COMPARE_TINY = ["--set", "rounds=2", "--set", "clients.total=8", "--set", "clients.per_round=4",
                "--set", "train.local_epochs=1"]


def run_compare(*args: str, watch_every: str = "20") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/compare.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **MPI_ENV, "HPCFED_WATCH_EVERY": watch_every})


def assert_progress_before_the_first_run_ends(stdout: str, tool: str) -> None:
    """Each run's log is named when it starts, and the set's state shows before any run is done."""
    lines = stdout.splitlines()
    first_done = next(i for i, line in enumerate(lines) if line.endswith(" s") and ": done in " in line)
    watched = [line for line in lines[:first_done] if line.startswith(f"{tool}: 0 of ")]
    assert any("round " in line and "all done in about" in line for line in watched), stdout
    assert any(line.startswith(f"{tool}: ") and "started, progress in " in line and line.endswith(".log")
               for line in lines[:first_done]), stdout


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_runs_each_method_once_and_tabulates_the_results_files(tmp_path):
    out = tmp_path / "cmp"
    args = ["jobs/compare_digits.yaml", "--out", str(out), *COMPARE_TINY]    # every method of the job set
    first = run_compare(*args, "--parallel", "3", watch_every="0.5")    # the same runs, three at a time
    assert first.returncode == 0, first.stderr[-3000:]
    assert_progress_before_the_first_run_ends(first.stdout, "compare")
    rows = read_csv(out / "compare.csv")
    assert list(rows[0]) == list(COMPARISON_COLUMNS)
    methods = {"superfed": 5, "fedsup": 5, "efedsup": 5, "heterofl": 3, "fjord": 3, "fedrolex": 3,
               "fedavg_smallest": 1, "fedavg_largest": 1}     # label: reference subnets, in file order
    assert list(dict.fromkeys(r["method"] for r in rows)) == list(methods)
    for method in methods:
        r = read_results(out / f"{method}.h5")
        assert r["attrs"]["status"] == "finished"
        assert load_job(str(out / f"{method}.yaml")).to_yaml() == r["attrs"]["config_yaml"]
        mine = [row for row in rows if row["method"] == method]
        assert [row["subnet"] for row in mine] == list(r["eval"]["subnet_names"])
        for row, macs, acc in zip(mine, r["eval"]["subnet_macs"], r["eval"]["accuracy"][-1]):
            assert int(row["subnet_macs"]) == macs and float(row["accuracy"]) == acc
            assert row["strategy"] == r["attrs"]["strategy"] and int(row["rounds"]) == 2
            assert int(row["bytes_down"]) == r["rounds"]["bytes_down"].sum() > 0
            assert int(row["bytes_up"]) == r["rounds"]["bytes_up"].sum() > 0
            assert float(row["client_macs"]) == pytest.approx(r["rounds"]["macs"].sum(), rel=1e-12)
            assert float(row["virtual_time_s"]) == r["rounds"]["virtual_time_s"][-1]
        assert f"\n{method} " in first.stdout
    assert {m: len([r for r in rows if r["method"] == m]) for m in methods} == methods
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = run_compare(*args)   # every run is reused, the table is the same
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing the finished run") == len(methods) and "running" not in again.stdout
    assert read_csv(out / "compare.csv") == rows

    changed = run_compare(*args, "--set", "train.lr=0.05")   # another job: refused before anything runs
    assert changed.returncode == 2 and len(changed.stderr.strip().splitlines()) == 1
    assert "superfed.h5" in changed.stderr and "train.lr differs" in changed.stderr and "--overwrite" in changed.stderr


def test_compare_rejects_a_job_set_that_gives_a_key_twice(tmp_path):
    (tmp_path / "set.yaml").write_text("base: {rounds: 2}\nmethods:\n  fine: {}\n  fine: {seed: 1}\n")
    proc = run_compare(str(tmp_path / "set.yaml"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stdout == "" and not (tmp_path / "out").exists()
    assert proc.stderr == (f"compare: error: job-set file {str(tmp_path / 'set.yaml')!r}: key 'fine' is given twice "
                           f"in one mapping, at lines 3 and 4; keep one\n")


def test_compare_takes_a_shipped_job_set_by_name_from_any_folder(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "compare.py"), "compare_digits", "--methods",
                           "fedavg_smallest", "--set", "rounds=1", "--set", "clients.total=8", "--set",
                           "clients.per_round=4", "--set", "train.local_epochs=1", *SMALL_MODEL],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, **MPI_ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"compare: job set: {ROOT / 'jobs' / 'compare_digits.yaml'} (shipped as 'compare_digits')" in proc.stdout
    assert read_results(tmp_path / "runs" / "compare_digits" / "fedavg_smallest.h5")["attrs"]["status"] == "finished"


def test_compare_stops_at_a_failed_method_and_keeps_the_finished_ones(tmp_path):
    everyone_raises = [[c, 0] for c in range(8)]
    (tmp_path / "set.yaml").write_text(
        "base: {rounds: 2, clients: {total: 8, per_round: 4}, train: {local_epochs: 1}}\n"
        "methods:\n  fine: {strategy: {name: fedavg, fedavg: {arch: smallest}}}\n"
        f"  broken: {{strategy: {{name: fedavg}}, faults: {{raise_at: {everyone_raises}}}}}\n  after: {{}}\n")
    proc = run_compare(str(tmp_path / "set.yaml"), "--out", str(tmp_path / "out"), "--ranks", "2")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith("compare: error: method 'broken' failed (exit ")
    assert "injected" in proc.stderr.lower()    # the run's own last lines follow
    fine = read_results(tmp_path / "out" / "fine.h5")["attrs"]
    assert fine["status"] == "finished" and fine["world_size"] == 2
    assert not (tmp_path / "out" / "after.h5").exists() and not (tmp_path / "out" / "compare.csv").exists()


@pytest.mark.parametrize("args, expected", [
    (["jobs/compare_digits.yaml", "--methods", "superfed,fedprox"],
     "--methods: 'fedprox' is not a method of 'jobs/compare_digits.yaml'; accepted: superfed, fedsup, efedsup"),
    (["jobs/default.yaml"], "'jobs/default.yaml' is a job file, not a job set: a job set has base: (the common job) "
                            "and methods: (label: overrides); run a job with python -m hpcfed.run jobs/default.yaml"),
    (["compare_digit"], "job set 'compare_digit': no such file here and no shipped job set of that name (did you mean "
                        "'compare_digits'?); accepted: a file path or a shipped name: compare_digits, distreal, fednas, "
                        "reproduce/efedsup"),
    (["jobs/compare_digits.yaml", "--methods", "superfed", "--set", "rounds=0"],
     "'jobs/compare_digits.yaml', method 'superfed': rounds = 0: accepted an integer >= 1"),
    (["compare_digits", "--parallel", "0"], "--parallel 0: accepted a number of runs at once >= 1"),
])
def test_compare_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    proc = run_compare(*args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bench_efficiency_reports_each_side_as_gmacs_and_a_share_of_the_measured_peak(precision):
    out = run_tool("tools/bench_efficiency.py", "--rounds", "1", "--repeat", "1", "--gemm", "256",
                   "--precision", precision, "--set", "clients.per_round=2", *SMALL_MODEL)
    model = next(line for line in out.splitlines() if line.startswith("model:"))
    assert f"{precision}, {'channels-last' if precision == 'bf16' else 'contiguous'}" in model
    peak = float(re.search(rf"256x256 matrix product in {precision}: ([\d.]+) GMAC/s", out).group(1))
    assert peak > 0
    sides = re.findall(r"(\d+) samples in ([\d.]+) s = \d+ samples/s, ([\d.]+) GMAC/s = ([\d.]+)% of peak", out)
    assert len(sides) == 2 and sides[0][0] == sides[1][0]              # both sides trained the same samples
    for _, seconds, rate, share in sides:
        assert float(rate) > 0 and abs(float(share) - 100 * float(rate) / peak) < 0.1 * float(share) + 0.1
    ratio = float(re.search(r"efficiency ratio \(hpcfed one at a time / plain loop\): ([\d.]+)", out).group(1))
    assert 0.1 < ratio < 3


def test_bench_step_times_every_precision_and_layout_for_both_networks():
    out = run_tool("tools/bench_step.py", "--steps", "2", "--turns", "1", *SMALL_MODEL)
    for network in ("hpcfed supernet", "plain subnet"):
        line = next(line for line in out.splitlines() if line.startswith(network))
        found = re.findall(r"(fp32|bf16) (NCHW|NHWC): ([\d.]+) ms \(([\d.]+)x\)", line)
        assert [(p, layout) for p, layout, _, _ in found] == [("fp32", "NCHW"), ("fp32", "NHWC"), ("bf16", "NCHW"),
                                                            ("bf16", "NHWC")]
        assert all(float(ms) > 0 for _, _, ms, _ in found) and found[0][3] == "1.00"
