"""hpcfed export (tools/export.py): a trained subnet as a torch.export program that plain torch runs without hpcfed,
computing what hpcfed's evaluation computes; bad input stops it in one line with nothing written."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

from hpcfed.commands.export import main as export_main
from hpcfed.learning.evaluation import calibrate
from hpcfed.search.trained import open_run
from hpcfed.supernet import Arch, SubnetSpec
from tests.launch import ROOT, TINY, run_hpcfed

SITE = str(Path(torch.__file__).resolve().parent.parent)   # torch's site-packages, and nothing else

# Run with python -I -S: no site (so no .pth file installs hpcfed's editable finder), no PYTHONPATH, no
# cwd or script folder on sys.path; only torch's site-packages. Loads every program given, saves its logits.
LOADER = """
import importlib.util, sys
sys.path.append(sys.argv[1])
assert importlib.util.find_spec("hpcfed") is None, "hpcfed is importable"
import torch
x = torch.load(sys.argv[2])
for name in sys.argv[3:]:
    torch.save(torch.export.load(name + ".pt2").module()(x), name + ".logits")
assert not [m for m in sys.modules if m.startswith("hpcfed")]
"""


def plain_torch(cwd: Path, *args: str, code: str = LOADER) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, SITE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished TINY runs: norm bn, norm none, and iFedAvg's two models (smallest, largest)."""
    folder = tmp_path_factory.mktemp("runs")
    extra = {"bn": [], "none": ["--set", "model.norm=none"], "multi": ["--set", "strategy.name=ifedavg"]}
    for name, args in extra.items():
        proc = run_hpcfed([*TINY, *args, "--out", str(folder / f"{name}.h5")])
        assert proc.returncode == 0, proc.stderr
    return folder


def hpcfed_logits(path: Path, arch: Arch, model: int, x: torch.Tensor) -> torch.Tensor:
    """What hpcfed's evaluation computes: the supernet under the spec, statistics calibrated as the run's."""
    run = open_run(path)
    data = run.data()
    network, spec = run.network(run.space(data), model), SubnetSpec(arch)
    with torch.no_grad():
        return network(x, spec, statistics=calibrate(network, spec, run.calibration(data)))


def export(*args) -> int:
    return export_main([str(a) for a in args])


@pytest.mark.parametrize("norm", ["bn", "none"])
def test_exported_subnets_run_in_plain_torch_as_hpcfed_evaluates_them(runs, tmp_path, norm, one_torch_thread):
    path = runs / f"{norm}.h5"
    run = open_run(path)
    data = run.data()
    with h5py.File(path, "r") as f:
        accuracy, macs, params = f["eval/accuracy"][-1], f["eval/subnet_macs"][()], f["eval/subnet_params"][()]
    other = "d2,1-e.5,.25,1-k3,3,3-w1"   # in the space, not a reference
    cases = {"largest": (len(run.references) - 1, "largest"), "smaller": (1, run.references[1][0]),
             "other": (None, other)}
    for label, (_, name) in cases.items():
        assert export(path, "--arch", name, "--out", tmp_path / f"{label}.pt2") == 0
    torch.save(data.x_test, tmp_path / "x.pt")
    plain_torch(tmp_path, "x.pt", *cases)
    for label, (column, name) in cases.items():
        meta = json.loads((tmp_path / f"{label}.json").read_text())
        arch = Arch.from_dict(meta["arch"])
        logits = torch.load(tmp_path / f"{label}.logits")
        expected = hpcfed_logits(path, arch, 0, data.x_test)
        assert logits.shape == (len(data.y_test), 10)
        assert float((logits - expected).abs().max()) <= 1e-5
        assert meta["name"] == arch.name and meta["selected_by"] == f"--arch {name}" and meta["model"] == 0
        assert meta["input_shape"] == ["batch", 1, 8, 8] and meta["num_classes"] == 10
        assert meta["normalization"] == norm and meta["space"] == "resnet"
        assert ("500 training samples" in meta["calibration"]) == (norm == "bn")
        assert meta["run_file"] == str(path.resolve()) and meta["final_model_sha256"] == run.attrs["final_model_sha256"]
        assert meta["check"]["max_abs_logit_difference"] <= 1e-5
        if column is None:
            assert arch.name == other and meta["reference_subnet"] is None
            continue
        assert arch == run.references[column][1] and meta["reference_subnet"] == run.references[column][0]
        assert (meta["macs_per_sample"], meta["params"]) == (macs[column], params[column])
        correct = int((logits.argmax(dim=1) == data.y_test).sum())
        assert correct / len(data.y_test) == accuracy[column]


def test_the_documented_snippet_runs_in_plain_torch(runs, tmp_path):
    assert export(runs / "bn.h5", "--arch", "smallest", "--out", tmp_path / "subnet.pt2") == 0
    text = (ROOT / "docs" / "deploying.md").read_text().split("## Exporting a subnet", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"\n((?:    import torch\n)(?:    .*\n){2})", text)[1]
    code = "import sys\nsys.path.append(sys.argv[1])\n" + re.sub(r"(?m)^    ", "", snippet)
    plain_torch(tmp_path, code=code + "assert logits.shape == (5, 10), logits.shape\n")


def test_a_multi_model_run_exports_each_models_own_subnet(runs, tmp_path, one_torch_thread):
    path = runs / "multi.h5"
    run = open_run(path)
    data = run.data()
    with h5py.File(path, "r") as f:
        accuracy = f["eval/accuracy"][-1]
    for label, args, model in [("small", ["--arch", "smallest"], 0), ("large", ["--arch", "largest"], 1),
                               ("large0", ["--arch", "largest", "--model", "0"], 0)]:
        assert export(path, *args, "--out", tmp_path / f"{label}.pt2") == 0
        meta = json.loads((tmp_path / f"{label}.json").read_text())
        arch = Arch.from_dict(meta["arch"])
        assert meta["model"] == model
        logits = torch.export.load(tmp_path / f"{label}.pt2").module()(data.x_test)
        assert float((logits - hpcfed_logits(path, arch, model, data.x_test)).abs().max()) <= 1e-5
        if label != "large0":
            column = [a for _, a, _ in run.references].index(arch)
            assert int((logits.argmax(1) == data.y_test).sum()) / len(data.y_test) == accuracy[column]


def test_front_members_are_exported_from_the_recorded_search_front(runs, tmp_path, capsys):
    path = tmp_path / "searched.h5"
    shutil.copy(runs / "bn.h5", path)
    run = open_run(path)
    front = [run.references[0][1], run.references[-1][1]]
    with h5py.File(path, "a") as f:
        f.create_group("post_search").create_dataset("arch_json", data=[a.to_json() for a in front],
                                                     dtype=h5py.string_dtype())
    assert export(path, "--front", 1, "--out", tmp_path / "f1.pt2") == 0
    meta = json.loads((tmp_path / "f1.json").read_text())
    assert Arch.from_dict(meta["arch"]) == front[1] and meta["selected_by"] == "--front 1"
    assert export(path, "--front", 2, "--out", tmp_path / "f2.pt2") == 2
    assert "--front 2: the run's search front has 2 members; accepted 0..1" in capsys.readouterr().err
    assert not (tmp_path / "f2.pt2").exists()


def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys):
    path = runs / "bn.h5"
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "running.h5", "w") as f:
        f.attrs["config_yaml"] = "rounds: 1\n"
        f.create_group("eval")
    (out / "taken.pt2").write_text("keep me")
    names = ", ".join(n for n, _, _ in open_run(path).references)
    cases = [
        ([tmp_path / "missing.h5", "--arch", "largest"], "'%s' does not exist" % (tmp_path / "missing.h5")),
        ([tmp_path / "text.h5", "--arch", "largest"], "cannot be read as HDF5"),
        ([tmp_path / "running.h5", "--arch", "largest"], "holds no trained supernet"),
        ([path, "--arch", "huge"], f"--arch 'huge': unknown; accepted the run's reference subnets ({names}), "
                                   "largest, smallest, or an architecture of its space named as d<depth"),
        ([path, "--arch", "d3,2-e1,1,1,1,1-k3,3,3,3,3-w1"],
         "not in the run's space (arch d3,2-e1,1,1,1,1-k3,3,3,3,3-w1: stage 0 depth 3; accepted 1..2)"),
        ([path, "--arch", "d1,1-e.3,1-k3,3-w1"], "expand 0.3; accepted [0.25, 0.5, 0.75, 1.0]"),
        ([path, "--front", "0"], "has no search front (post_search/arch_json); run tools/search.py on it first"),
        ([path, "--arch", "largest", "--front", "0"], "give exactly one of --arch NAME and --front I (got --arch"),
        ([path], "give exactly one of --arch NAME and --front I"),
        ([path, "--arch", "largest", "--model", "3"], "--model 3: not in the run; accepted 0"),
    ]
    for args, message in cases:
        assert export(*args, "--out", out / "subnet.pt2") == 2, args
        err = capsys.readouterr().err
        assert err.startswith("export: error: ") and err.count("\n") == 1 and message in err, (args, err)
    for target, message in [(tmp_path / "nowhere" / "s.pt2", "does not exist; create it first"),
                            (out / "taken.pt2", "already exists; give another name or --overwrite"),
                            (out / "subnet.onnx", "give a file name ending in .pt2")]:
        assert export(path, "--arch", "largest", "--out", target) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"export: error: --out '{target}': ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["taken.pt2"] and (out / "taken.pt2").read_text() == "keep me"
    proc = subprocess.run([sys.executable, "tools/export.py", str(path), "--arch", "huge", "--out", str(out / "s.pt2")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("export: error: --arch 'huge'") and not proc.stdout
    assert export(path, "--arch", "largest", "--out", out / "taken.pt2", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["taken.json", "taken.pt2"]
