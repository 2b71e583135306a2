"""Job sets: one base job and named methods that change it, to compare methods on one setting.

A job-set file is a YAML mapping with two keys::

    base:      a job mapping, as in a job file (keys of hpcfed/config/schema.py; absent = the default job)
    methods:   label: overrides      (one entry per method, in the order they are run)

A method's job is ``base`` with its overrides merged in deep: a section the overrides name is
merged key by key, any other value (lists included) replaces the base's. Every method therefore
shares the data, clients, devices and seed of ``base`` unless it says otherwise. Labels name
files, so they are letters, digits, ``_`` and ``-``. See jobs/compare_digits.yaml.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from hpcfed.config import JobConfig
from hpcfed.config.parse import read_mapping
from hpcfed.errors import ConfigError, did_you_mean

LABEL = re.compile(r"[A-Za-z0-9_-]+")
JOB_KEYS = {f.name for f in dataclasses.fields(JobConfig)}   # a file with these at its top is a job


def load_jobset(path: str) -> dict[str, dict[str, Any]]:
    """Each method's job mapping (``base`` merged with its overrides), by label in the file's order.

    The mappings are not checked as jobs here: build each with hpcfed.config.build_job."""
    raw = read_mapping(path, "job-set file")
    unknown = [k for k in raw if k not in ("base", "methods")]
    if "methods" not in raw and any(k in JOB_KEYS for k in unknown):
        raise ConfigError(f"{path!r} is a job file, not a job set: a job set has base: (the common job) and methods: "
                          f"(label: overrides); run a job with python -m hpcfed.run {path}")
    if unknown:
        raise ConfigError(f"job-set file {path!r}: {unknown[0]!r}: unknown key{did_you_mean(unknown[0], ('base', 'methods'))}; "
                          f"accepted keys: base, methods")
    base, methods = raw.get("base") or {}, raw.get("methods")
    if not isinstance(base, dict):
        raise ConfigError(f"job-set file {path!r}: base = {base!r}: expected a job mapping")
    if not isinstance(methods, dict) or not methods:
        raise ConfigError(f"job-set file {path!r}: methods = {methods!r}: expected a non-empty mapping "
                          f"label: overrides, e.g. methods: {{heterofl: {{strategy: {{name: heterofl}}}}}}")
    for label, overrides in methods.items():
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise ConfigError(f"job-set file {path!r}: method label {label!r}: accepted letters, digits, _ and -")
        if not isinstance(overrides, dict | None):
            raise ConfigError(f"job-set file {path!r}: methods.{label} = {overrides!r}: expected a mapping of "
                              f"job keys (or nothing, for the base job itself)")
    return {label: merge(base, overrides or {}) for label, overrides in methods.items()}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in deep (mappings key by key, anything else replaced); new dicts."""
    out = dict(base)
    for key, value in overrides.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out
