"""The README: one screen to set up, run and look at the result, under 200 lines, every page it
names there, and its next steps run as written (on a small first run)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from tests.launch import MPI_ENV, ROOT, TINY, run_hpcfed

README = (ROOT / "README.md").read_text()


def test_the_readme_starts_in_one_screen_and_names_pages_that_exist():
    lines = README.splitlines()
    assert len(lines) < 200
    first_screen = "\n".join(lines[:40])
    assert "mpirun -n 8 python -m hpcfed.run" in first_screen and "tests/run.sh" in first_screen
    assert "python tools/summarize.py" in first_screen and "python tools/plot.py" in first_screen
    pages = set(re.findall(r"`(docs/[\w./-]+\.md)`", README))
    assert len(pages) >= 10 and all((ROOT / page).is_file() for page in pages), pages


def test_the_next_steps_run_as_written(tmp_path):
    """Each command of "What to look at next", in a folder whose runs/first.h5 is a small first run;
    compare is given two of its job set's methods (the others run the same code)."""
    assert run_hpcfed([*TINY, "--out", str(tmp_path / "runs" / "first.h5")]).returncode == 0
    section = README.split("## What to look at next", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip().split("  #")[0] for line in section.splitlines() if line.startswith("    python ")]
    assert len(commands) >= 5
    for command in commands:
        args = shlex.split(command)
        args[0] = sys.executable
        args = [str(ROOT / a) if a.startswith("tools/") else a for a in args]
        if "tools/compare.py" in command:
            args += ["--methods", "superfed,heterofl"]
        proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={**os.environ, **MPI_ENV, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
    assert (tmp_path / "runs" / "first-acc_vs_macs.png").is_file() and (tmp_path / "runs" / "second.h5").is_file()
    assert (tmp_path / "runs" / "compare" / "compare.csv").is_file()
