"""Job files by path or by name: the shipped jobs and job sets, and how a name finds its file.

The repository's ``jobs/`` folder is shipped with the package: a regular install copies it into
the package as ``hpcfed/jobs_shipped/`` (setup.py); an editable install or a checkout on PYTHONPATH
reads the checkout's ``jobs/`` beside the package. A shipped file's name is its path under
``jobs/`` without ``.yaml`` (``superfed_256``, ``reproduce/efedsup``); its description is its
first comment line. :func:`resolve` turns what a user typed into a file: a local file wins (the
path as given, then NAME.yaml), then the shipped file of that name.
"""
from __future__ import annotations

from pathlib import Path

from hpcfed.config.parse import read_mapping
from hpcfed.errors import ConfigError, did_you_mean

PACKAGE = Path(__file__).resolve().parents[1]   # hpcfed/ (this module is hpcfed/config/jobfiles.py)
INSTALLED = PACKAGE / "jobs_shipped"   # a regular install (setup.py copies jobs/ here)
CHECKOUT = PACKAGE.parent / "jobs"     # an editable install or a checkout


def shipped_dir() -> Path | None:
    """The folder of the shipped job files (installed copy first, else the checkout's), or None."""
    return next((d for d in (INSTALLED, CHECKOUT) if d.is_dir()), None)


def shipped() -> dict[str, Path]:
    """Every shipped job and job set file by name, sorted: jobs/ first, then its subfolders."""
    folder = shipped_dir()
    if folder is None:
        return {}
    paths = sorted(folder.rglob("*.yaml"), key=lambda p: (len(p.relative_to(folder).parts), str(p)))
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in paths}


def describe(path: Path) -> tuple[bool, str]:
    """(whether the file is a job set, its description: the first comment line)."""
    first = next((line for line in path.read_text().splitlines() if line.strip()), "")
    description = first.lstrip("#").strip() if first.startswith("#") else "(no description: no leading # line)"
    return "methods" in read_mapping(str(path), "shipped job file"), description


def shipped_path(name: str) -> Path:
    """The shipped file called ``name`` (for tools that run a fixed shipped job set)."""
    table = shipped()
    if name not in table:
        raise ConfigError(f"shipped job {name!r} not found in {str(shipped_dir())!r}; "
                          f"accepted: {', '.join(table) or '(none shipped)'}")
    return table[name]


def resolve(spec: str, what: str = "job") -> Path:
    """The file that ``spec`` names: the path as given, NAME.yaml here, or the shipped NAME (in that order).
    ``what`` ("job", "job set", "job or job set") only words the error, which lists the shipped names."""
    given = Path(spec)
    if given.is_file():
        return given
    if not spec.endswith(".yaml") and Path(spec + ".yaml").is_file():
        return Path(spec + ".yaml")
    name = spec[:-len(".yaml")] if spec.endswith(".yaml") else spec
    table = shipped()
    if name in table:
        return table[name]
    kinds = {"job": [False], "job set": [True]}.get(what, [False, True])
    names = [n for n, path in table.items() if describe(path)[0] in kinds]
    raise ConfigError(f"{what} {spec!r}: no such file here and no shipped {what} of that name"
                      f"{did_you_mean(name, names)}; accepted: a file path or a shipped name: "
                      f"{', '.join(names) or '(none shipped)'}")


def source_note(spec: str, path: Path) -> str:
    """The file ``spec`` resolved to, and whether it is shipped or a local file that wins over a
    shipped one of the same name, e.g. ``/x/jobs/superfed_256.yaml (shipped as 'superfed_256')``."""
    table = shipped()
    for name, shipped_file in table.items():
        if shipped_file.resolve() == path.resolve():
            return f"{shipped_file} (shipped as {name!r})"
    name = spec[:-len(".yaml")] if spec.endswith(".yaml") else spec
    wins = f" (a local file; it wins over the shipped {name!r})" if name in table else ""
    return f"{path.resolve()}{wins}"


def listing() -> str:
    """``python -m hpcfed.run --list-jobs``: the shipped jobs and job sets, one line each."""
    table = shipped()
    if not table:
        return f"no shipped jobs found (looked in {INSTALLED} and {CHECKOUT})"
    width = max(len(n) for n in table) + 2
    described = {name: describe(path) for name, path in table.items()}
    lines = [f"shipped jobs in {shipped_dir()} (a file NAME or NAME.yaml in this folder wins):", "",
             "jobs (python -m hpcfed.run NAME):"]
    lines += [f"  {n:<{width}}{text}" for n, (is_set, text) in described.items() if not is_set]
    lines += ["", "job sets (python tools/compare.py NAME):"]
    lines += [f"  {n:<{width}}{text}" for n, (is_set, text) in described.items() if is_set]
    return "\n".join(lines)
