"""Time to a target accuracy: hpcfed.record.report.time_to_target, compare.py --target and plot.py with several runs."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpcfed.record.comparison import COMPARISON_COLUMNS
from hpcfed.record.reading import read_results
from tests.e2e.test_tools import read_csv, run_compare
from tests.launch import MPI_ENV, ROOT

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """compare.py without --target on a two-method job set at a tiny size; its output folder."""
    folder = tmp_path_factory.mktemp("tta")
    (folder / "set.yaml").write_text(
        "base: {rounds: 3, clients: {total: 8, per_round: 4}, train: {local_epochs: 1}, eval: {every: 1},\n"
        "       model: {stem: 4, widths: [4, 8], depths: [1, 1]}}\n"
        "methods:\n  small: {strategy: {name: fedavg, fedavg: {arch: smallest}}}\n"
        "  super: {strategy: {name: superfed}}\n")
    proc = run_compare(str(folder / "set.yaml"), "--out", str(folder / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy   client MACs" in proc.stdout        # no time-to-target column without --target
    return folder


def expected(results: dict, target: float) -> list[tuple[str, str]]:
    """The CSV cells time_to_target_s, round_to_target per reference subnet, computed here from the file."""
    time_of = dict(zip(results["rounds"]["round"], results["rounds"]["virtual_time_s"]))
    cells = []
    for j in range(len(results["eval"]["subnet_names"])):
        hit = [e for e, acc in enumerate(results["eval"]["accuracy"][:, j]) if acc >= target]
        r = results["eval"]["round"][hit[0]] if hit else None
        cells.append((str(float(time_of[r])), str(int(r) + 1)) if hit else ("", ""))
    return cells


def test_compare_with_a_target_writes_when_each_subnet_first_reached_it(two_runs):
    out = two_runs / "out"
    rows = read_csv(out / "compare.csv")
    assert list(rows[0]) == list(COMPARISON_COLUMNS)
    assert all(r["time_to_target_s"] == r["round_to_target"] == "" for r in rows)    # no --target
    assert (out / "time_to_accuracy.png").read_bytes()[:8] == PNG
    results = {m: read_results(out / f"{m}.h5") for m in ("small", "super")}
    best = float(results["super"]["eval"]["accuracy"][:, 0].max())    # reached for sure, exactly, by this subnet
    for target in (best, 1.0):
        proc = run_compare(str(two_runs / "set.yaml"), "--out", str(out), "--target", repr(target))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("reusing the finished run") == 2
        assert f"to {100 * target:g} %" in proc.stdout
        rows = read_csv(out / "compare.csv")
        for method, r in results.items():
            cells = [(row["time_to_target_s"], row["round_to_target"]) for row in rows if row["method"] == method]
            assert cells == expected(r, target)
        if target == best:
            assert rows[[row["method"] for row in rows].index("super")]["round_to_target"] != ""


@pytest.mark.parametrize("tool", ["tools/compare.py", "tools/plot.py"])
@pytest.mark.parametrize("target", ["85", "0", "abc"])
def test_a_bad_target_is_one_line_and_exit_2(tmp_path, tool, target):
    first = "jobs/compare_digits.yaml" if tool == "tools/compare.py" else str(tmp_path / "a.h5")
    proc = subprocess.run([sys.executable, tool, first, "--out", str(tmp_path / "out"), "--target", target], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **MPI_ENV})
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"--target {target!r}: accepted" in proc.stderr and "(0, 1]" in proc.stderr
    assert not (tmp_path / "out").exists()


def plot_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/plot.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_plot_draws_several_runs_on_one_figure(two_runs, tmp_path):
    small, sup = str(two_runs / "out" / "small.h5"), str(two_runs / "out" / "super.h5")
    proc = plot_tool(small, sup, "--out-dir", str(tmp_path))          # defaults: largest subnet, virtual time
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "runs-acc_vs_time.png")]
    assert (tmp_path / "runs-acc_vs_time.png").read_bytes()[:8] == PNG
    fig = tmp_path / "sub" / "fig.png"
    proc = plot_tool(small, sup, "--out", str(fig), "--labels", "FedAvg,SuperFed", "--subnet", "all",
                     "--target", "0.2", "--x", "round")
    assert proc.returncode == 0, proc.stderr
    assert fig.read_bytes()[:8] == PNG
    name = str(read_results(sup)["eval"]["subnet_names"][0])
    proc = plot_tool(sup, "--subnet", name, "--out", str(tmp_path / "one.png"))    # one run, one named subnet
    assert proc.returncode == 0 and (tmp_path / "one.png").read_bytes()[:8] == PNG, proc.stderr


@pytest.mark.parametrize("extra, message", [
    (["--subnet", "nope"], "--subnet 'nope': not a reference subnet of this run; accepted: all, largest, smallest, "),
    (["--labels", "a,b,c"], "--labels 'a,b,c': 3 labels for 2 runs"),
])
def test_plot_bad_input_is_one_line_and_exit_2(two_runs, tmp_path, extra, message):
    proc = plot_tool(str(two_runs / "out" / "small.h5"), str(two_runs / "out" / "super.h5"),
                     "--out", str(tmp_path / "fig.png"), *extra)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "fig.png").exists()
