"""Tests of hpcfed.experiments.jobset: the deep merge, the file's one-line errors, and jobs/compare_digits.yaml's setting."""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from hpcfed.assembly.job import build_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.config import StrategyConfig
from hpcfed.errors import ConfigError
from hpcfed.experiments.jobset import load_jobset, merge
from hpcfed.population.devices import Population
from hpcfed.strategies import STRATEGIES
from hpcfed.strategies.heterofl import HeteroFL
from hpcfed.supernet import cost

COMPARE_DIGITS = Path(__file__).resolve().parents[2] / "jobs" / "compare_digits.yaml"


def test_merge_is_deep_for_sections_and_replaces_everything_else():
    base = {"rounds": 5, "clients": {"total": 8, "per_round": 4}, "model": {"widths": [8, 16]}}
    merged = merge(base, {"clients": {"per_round": 2}, "model": {"widths": [4]}, "seed": 3})
    assert merged == {"rounds": 5, "clients": {"total": 8, "per_round": 2}, "model": {"widths": [4]}, "seed": 3}
    assert base == {"rounds": 5, "clients": {"total": 8, "per_round": 4}, "model": {"widths": [8, 16]}}


def test_methods_come_in_file_order_and_an_empty_entry_is_the_base_job(tmp_path):
    path = tmp_path / "set.yaml"
    path.write_text("base: {rounds: 3, strategy: {name: fedavg}}\n"
                    "methods:\n  small: {strategy: {fedavg: {arch: smallest}}}\n  plain:\n"
                    "  sf: {strategy: {name: superfed}}\n")
    methods = load_jobset(str(path))
    assert list(methods) == ["small", "plain", "sf"]
    assert methods["small"] == {"rounds": 3, "strategy": {"name": "fedavg", "fedavg": {"arch": "smallest"}}}
    assert build_job(methods["plain"]) == build_job({"rounds": 3, "strategy": {"name": "fedavg"}})
    assert build_job(methods["sf"], ["rounds=7"]).rounds == 7


@pytest.mark.parametrize("text, expected", [
    ("methods: {a: {}}\nbase: {}\nextra: 1\n", "'extra': unknown key; accepted keys: base, methods"),
    ("base: {rounds: 3}\n", "methods = None: expected a non-empty mapping label: overrides"),
    ("methods: [a, b]\n", "methods = ['a', 'b']: expected a non-empty mapping"),
    ("base: [1]\nmethods: {a: {}}\n", "base = [1]: expected a job mapping"),
    ("methods: {a/b: {}}\n", "method label 'a/b': accepted letters, digits, _ and -"),
    ("methods: {a: fedavg}\n", "methods.a = 'fedavg': expected a mapping of job keys"),
    ("methods: {a: {}\n", "is not valid YAML at line"),
    ("base: {rounds: 3}\nmethods:\n  a: {}\n  b: {}\n  a: {seed: 1}\n",
     "key 'a' is given twice in one mapping, at lines 3 and 5; keep one"),
    ("base:\n  rounds: 3\n  seed: 1\n  rounds: 4\nmethods: {a: {}}\n",
     "key 'rounds' is given twice in one mapping, at lines 2 and 4; keep one"),
    ("methods: {a: {strategy: {name: fedavg}, strategy: {name: fjord}}}\n",
     "key 'strategy' is given twice in one mapping, on line 1; keep one"),
])
def test_a_bad_job_set_is_one_line_naming_the_value(tmp_path, text, expected):
    path = tmp_path / "set.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_jobset(str(path))
    assert expected in str(err.value) and "\n" not in str(err.value) and "job-set file" in str(err.value)


def test_a_job_file_given_as_a_job_set_is_named_as_such(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: tiny\nrounds: 3\nstrategy: {name: fedavg}\n")
    with pytest.raises(ConfigError, match="is a job file, not a job set: a job set has base: .* and methods: "):
        load_jobset(str(path))
    path.write_text("base: {}\nmethod: {a: {}}\n")   # a typo in a job set is a typo
    with pytest.raises(ConfigError, match="'method': unknown key \\(did you mean 'methods'\\?\\)"):
        load_jobset(str(path))


def test_a_missing_job_set_file_is_one_line():
    with pytest.raises(ConfigError, match="job-set file 'nope.yaml' does not exist"):
        load_jobset("nope.yaml")


def test_compare_digits_methods_share_one_setting_and_only_change_the_strategy():
    methods = load_jobset(str(COMPARE_DIGITS))
    assert list(methods) == ["superfed", "fedsup", "efedsup", "heterofl", "fjord", "fedrolex",
                             "fedavg_smallest", "fedavg_largest"]
    base = build_job(methods["superfed"])
    for label, raw in methods.items():
        name = raw["strategy"]["name"]
        if name in STRATEGIES:    # the ones this hpcfed has
            job = build_job(raw)
            assert dataclasses.replace(job, strategy=base.strategy) == base, label
            assert job.strategy == StrategyConfig(name, STRATEGIES[name].Options(**raw["strategy"].get(name, {})))


def test_compare_digits_devices_spread_over_every_width_tier():
    """Each HeteroFL tier is the widest that fits for at least a fifth of the clients (the tiers differ)."""
    job = build_job(load_jobset(str(COMPARE_DIGITS))["heterofl"])
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    needs = [cost(space, arch).train_memory_bytes(job.train.batch_size) for arch in HeteroFL(job, space).tiers()]
    population = Population(job.devices, job.clients.total, job.seed)
    widest = Counter(sum(population.device(c).memory_bytes >= need for need in needs)
                     for c in range(job.clients.total))
    assert len(needs) == 3 and all(widest[tier] >= job.clients.total / 5 for tier in (1, 2, 3)), widest
