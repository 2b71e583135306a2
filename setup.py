"""Shim for tools that still call setup.py; the metadata lives in setup.cfg.

It also ships the job files: the repository keeps them in jobs/ at its top, and a regular build
copies them into the package as hpcfed/jobs_shipped/ (hpcfed.config.jobfiles reads them there). An
editable install needs no copy: hpcfed.config.jobfiles reads the checkout's jobs/ beside the package.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

JOBS = Path(__file__).resolve().parent / "jobs"


class BuildPyWithJobs(build_py):
    """build_py, then jobs/**/*.yaml into BUILD/hpcfed/jobs_shipped/ (not for editable installs)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "hpcfed" / "jobs_shipped"
        for source in sorted(JOBS.rglob("*.yaml")):
            dest = target / source.relative_to(JOBS)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)


setup(cmdclass={"build_py": BuildPyWithJobs})
