"""The house keeps its plan: the import-linter contracts in setup.cfg hold (layers, no import circle,
methods apart, shared code reaching a method only through the registry), a change that imports
upwards is caught and named, and no module of hpcfed/ exceeds 300 lines (docs/architecture.md)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.launch import ROOT

LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
ROOM = 300   # lines a module of hpcfed/ may have (docs/architecture.md)

needs_linter = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[test]')")


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with ``root``'s setup.cfg on ``root``'s hpcfed package."""
    return subprocess.run([LINT, "--config", str(root / "setup.cfg"), "--no-cache"], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
                          timeout=300)


@needs_linter
def test_every_contract_is_kept():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for contract in ("Layers", "No import circle", "A method is one module or folder", "Shared code reaches a method"):
        assert contract in proc.stdout and "KEPT" in proc.stdout


@needs_linter
@pytest.mark.parametrize("module, line, broken", [
    ("hpcfed/config/parse.py", "import hpcfed.engine.server", "hpcfed.config is not allowed to import hpcfed.engine"),
    ("hpcfed/round/merge.py", "from hpcfed.strategies import STRATEGIES", "hpcfed.round is not allowed to import "
                                                                         "hpcfed.strategies"),
    ("hpcfed/strategies/superfed.py", "from hpcfed.strategies.fedsup import FedSup", "hpcfed.strategies.superfed is not "
                                                                                    "allowed to import hpcfed.strategies.fedsup"),
])
def test_an_import_against_the_contract_fails_and_is_named(tmp_path, module, line, broken):
    copy = tmp_path / "checkout"
    copy.mkdir()
    shutil.copy(ROOT / "setup.cfg", copy / "setup.cfg")
    shutil.copytree(ROOT / "hpcfed", copy / "hpcfed", ignore=shutil.ignore_patterns("__pycache__", "jobs_shipped"))
    with open(copy / module, "a") as f:
        f.write(f"\n{line}  # the violation this test plants\n")
    proc = lint(copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BROKEN" in proc.stdout and broken in " ".join(proc.stdout.split())
    assert module.replace("/", ".").removesuffix(".py") in proc.stdout   # the offending module is named


def test_no_module_of_hpcfed_exceeds_its_room():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "hpcfed").rglob("*.py")
             if "jobs_shipped" not in p.parts}
    assert sizes and not {p: n for p, n in sizes.items() if n > ROOM}
