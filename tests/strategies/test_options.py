"""Tests of per-method strategy options (hpcfed.assembly.job): each strategy's frozen Options,
the ``strategy: {name: X, X: {...}}`` layout, ``--set strategy.X.option=v`` and the one-line errors."""
from __future__ import annotations

import dataclasses

import pytest

from hpcfed.assembly.job import build_job, default_job, load_job
from hpcfed.config import JobConfig, StrategyConfig
from hpcfed.errors import ConfigError
from hpcfed.strategies import STRATEGIES, make_strategy
from hpcfed.strategies.base import StrategyOptions
from hpcfed.strategies.superfed import SuperFedOptions
from tests.fakes import tiny_space

SUPERFED_OPTIONS = "superfed's options: distribution, weighting, beta0, beta_end, decay_fraction, sample_weighted"


NEEDS = {"fednas": ["data.client_val_fraction=0.2"],
         "distreal": ["data.server_val_fraction=0.1", "clients.deadline_s=5"]}   # what a method requires of the rest of the job

@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_declares_frozen_options_whose_fields_have_defaults(name):
    options = STRATEGIES[name].Options
    assert issubclass(options, StrategyOptions) and dataclasses.is_dataclass(options)
    assert options.__dataclass_params__.frozen
    for f in dataclasses.fields(options):
        assert f.default is not dataclasses.MISSING, f"{name}: {f.name} has no default"
    assert hash(options()) == hash(options())


def test_the_default_job_has_superfeds_default_options():
    strategy = default_job().strategy
    assert strategy.name == "superfed" and strategy.options == SuperFedOptions()
    assert default_job().strategy.options.beta0 == 0.9
    assert hash(default_job()) == hash(load_job())


def test_the_schema_alone_leaves_the_options_to_the_method():
    """JobConfig() is the schema's defaults: its method's options are filled in when a job is built, and a
    strategy given such a job takes its own defaults."""
    assert JobConfig().strategy == StrategyConfig("superfed", None)
    assert make_strategy(JobConfig(), tiny_space()).options == SuperFedOptions()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_strategy_reads_the_jobs_options_for_its_method(name):
    job = load_job(None, [f"strategy.name={name}", *NEEDS.get(name, [])])
    assert type(job.strategy.options) is STRATEGIES[name].Options
    assert make_strategy(job, tiny_space()).options is job.strategy.options


def test_a_method_without_options_loads_with_or_without_its_empty_section():
    for name in ("heterofl", "fedrolex", "feddropout"):
        assert build_job({"strategy": {"name": name}}) == build_job({"strategy": {"name": name, name: {}}})
        assert dataclasses.fields(build_job({"strategy": {"name": name}}).strategy.options) == ()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_to_yaml_writes_only_the_chosen_methods_options_and_round_trips(tmp_path, name):
    job = load_job(None, [f"strategy.name={name}", *NEEDS.get(name, [])])
    written = job.to_yaml()
    path = tmp_path / "job.yaml"
    path.write_text(written)
    assert load_job(str(path)) == job
    section = written[written.index("strategy:"):written.index("train:")]
    assert f"\n  {name}:" in section and [m for m in STRATEGIES if f"\n  {m}:" in section] == [name]


def test_set_overrides_reach_the_methods_options(tmp_path):
    job = load_job(None, ["strategy.name=efedsup", "strategy.efedsup.tiers=fixed4", "strategy.efedsup.merge=selected",
                          "strategy.efedsup.sandwich_random=0", "strategy.efedsup.distill=false"])
    assert (job.strategy.options.tiers, job.strategy.options.merge) == ("fixed4", "selected")
    assert job.strategy.options.sandwich_random == 0 and job.strategy.options.distill is False
    assert load_job(None, ["strategy.name=fedavg", "strategy.fedavg.arch=ref2"]).strategy.options.arch == "ref2"
    assert load_job(None, ["strategy.superfed.beta0=0.5"]).strategy.options.beta0 == 0.5   # name defaults to superfed
    path = tmp_path / "job.yaml"
    path.write_text("strategy: {name: superfed, superfed: {beta0: 0.9, weighting: maxnet}}\n")
    job = load_job(str(path), ["strategy.superfed.weighting=uniform"])
    assert job.strategy == StrategyConfig("superfed", SuperFedOptions(beta0=0.9, weighting="uniform"))


def test_options_are_frozen_and_must_match_the_method():
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_job().strategy.options.beta0 = 0.5
    mismatched = dataclasses.replace(default_job(), strategy=StrategyConfig("fedavg", SuperFedOptions()))
    with pytest.raises(TypeError, match="FedAvgOptions"):
        make_strategy(mismatched, tiny_space())


# (job mapping, --set overrides, the whole error line)
ERRORS = [
    ({"strategy": {"name": "superfed", "fedsup": {"distill": False}}}, [],
     f"strategy.fedsup: options of fedsup, but the chosen method (strategy.name) is superfed; {SUPERFED_OPTIONS}"),
    ({"strategy": {"superfed": {"beta0": 0.9}}}, ["strategy.name=fedavg"],
     "strategy.superfed: options of superfed, but the chosen method (strategy.name) is fedavg; fedavg's options: arch"),
    ({}, ["strategy.name=fedsup", "strategy.fedsup.beta0=0.5"],
     "strategy.fedsup.beta0: an option of superfed, not of fedsup; fedsup's options: distill, sandwich_random"),
    ({"strategy": {"name": "heterofl", "heterofl": {"distill": True}}}, [],
     "strategy.heterofl.distill: an option of fedsup, efedsup, fjord, not of heterofl; heterofl has no options"),
    ({"strategy": {"beta0": 0.5}}, [],
     "strategy.beta0: options go under the method's name; write strategy: {name: superfed, superfed: {beta0: 0.5}} "
     "(or --set strategy.superfed.beta0=0.5)"),
    ({"strategy": {"name": "fedavg"}}, ["strategy.arch=smallest"],
     "strategy.arch: options go under the method's name; write strategy: {name: fedavg, fedavg: {arch: smallest}} "
     "(or --set strategy.fedavg.arch=smallest)"),
    ({"strategy": {"name": "fedavg", "beta0": 0.5}}, [],
     "strategy.beta0: an option of superfed, but the chosen method (strategy.name) is fedavg; fedavg's options: arch"),
    ({}, ["strategy.bogus=1"], "strategy.bogus: unknown key; accepted keys here: name, superfed"),
    ({}, ["strategy.superfed.bogus=1"], f"strategy.superfed.bogus: unknown key; accepted keys here: "
                                        f"{SUPERFED_OPTIONS.split(': ')[1]}"),
    ({}, ["strategy.name=fedrolex", "strategy.fedrolex.bogus=1"],
     "strategy.fedrolex.bogus: unknown key; fedrolex has no options"),
    ({}, ["strategy.superfed.weighting=x"], "strategy.superfed.weighting = 'x': accepted maxnet | uniform"),
    ({}, ["strategy.superfed.beta0=0"], "strategy.superfed.beta0 = 0.0: accepted a number in (0, 1]"),
    ({}, ["strategy.superfed.sample_weighted=3"], "strategy.superfed.sample_weighted = 3: expected true or false"),
    ({}, ["strategy.name=fedavg", "strategy.fedavg.arch=ref5"],
     "strategy.fedavg.arch = 'ref5': accepted largest | smallest | ref0..ref4 | an architecture name such as "
     "d2,1-e.25,.5,1-k3,3,3-w1"),
    ({}, ["strategy.name=efedsup", "strategy.efedsup.tiers=fixed3"],
     "strategy.efedsup.tiers = 'fixed3': accepted device | fixed4 (did you mean 'fixed4'?)"),
    ({}, ["strategy.name=fjord", "strategy.fjord.distill=maybe"],
     "strategy.fjord.distill = 'maybe': expected true or false"),
    ({}, ["strategy.name=fedprox"], "strategy.name = 'fedprox': accepted "
                                    "fedavg | superfed | heterofl | fedrolex | feddropout | fedsup | efedsup | fjord | ifedavg | fednas | distreal"),
    ({}, ["strategy.superfed=5"], "strategy.superfed: expected a mapping; got 5"),
]


@pytest.mark.parametrize("raw, overrides, expected", ERRORS, ids=[e[2].split(":")[0] for e in ERRORS])
def test_misplaced_options_and_bad_values_are_one_line_errors(raw, overrides, expected):
    with pytest.raises(ConfigError) as info:
        build_job(raw, overrides)
    assert str(info.value) == expected
