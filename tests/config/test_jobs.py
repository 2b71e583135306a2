"""Tests of hpcfed.config and hpcfed.assembly.job: the default job, --set overrides, YAML round trips and one-line errors."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hpcfed.assembly.job import load_job
from hpcfed.config import DEFAULT_METHOD, ClientsConfig, JobConfig, ModelConfig, StrategyConfig, TrainConfig
from hpcfed.errors import ConfigError
from hpcfed.strategies import STRATEGIES

DEFAULT_JOB = Path(__file__).resolve().parents[2] / "jobs" / "default.yaml"
# the schema's defaults with the default method's own default options: the built-in default job
BUILT_IN = dataclasses.replace(JobConfig(), strategy=StrategyConfig(DEFAULT_METHOD, STRATEGIES[DEFAULT_METHOD].Options()))


def test_no_path_gives_the_builtin_default():
    assert load_job() == BUILT_IN
    assert load_job(None, []) == BUILT_IN


def test_empty_file_gives_the_default(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing but a comment\n")
    assert load_job(str(path)) == BUILT_IN


def test_jobs_default_yaml_equals_the_builtin_default():
    if not DEFAULT_JOB.is_file():
        pytest.skip("jobs/default.yaml is absent")
    assert load_job(str(DEFAULT_JOB)) == BUILT_IN


def test_set_overrides_are_nested_and_typed():
    job = load_job(None, ["rounds=7", "train.lr=0.5", "model.widths=[8,16]"])
    assert job.rounds == 7 and type(job.rounds) is int
    assert job.train.lr == 0.5 and type(job.train.lr) is float
    assert job.model.widths == (8, 16) and all(type(w) is int for w in job.model.widths)
    # Everything else is untouched.
    assert job == dataclasses.replace(BUILT_IN, rounds=7, train=dataclasses.replace(TrainConfig(), lr=0.5),
                                      model=dataclasses.replace(ModelConfig(), widths=(8, 16)))


def test_set_overrides_convert_ints_to_floats_and_parse_strings_and_bools():
    job = load_job(None, ["train.lr=1", "strategy.superfed.sample_weighted=true",
                          "devices.speed_macs_per_s=[1, 2.5]", "data.path="])
    assert job.train.lr == 1.0 and type(job.train.lr) is float
    assert job.strategy.name == "superfed" and job.strategy.options.sample_weighted is True
    assert job.devices.speed_macs_per_s == (1.0, 2.5) and job.data.path == ""


def test_set_overrides_win_over_the_file_and_keep_its_other_keys(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("rounds: 5\nclients: {total: 10, per_round: 4}\ntrain: {lr: 0.25}\n")
    job = load_job(str(path), ["rounds=9", "clients.per_round=3"])
    assert job.rounds == 9
    assert job.clients == dataclasses.replace(ClientsConfig(), total=10, per_round=3)
    assert job.train.lr == 0.25


def test_later_set_overrides_win():
    assert load_job(None, ["rounds=3", "rounds=4"]).rounds == 4


@pytest.mark.parametrize("overrides", [
    [],
    ["rounds=7", "train.lr=0.5", "model.widths=[8,16]", "strategy.name=heterofl"],
    ["strategy.name=efedsup", "strategy.efedsup.tiers=fixed4", "strategy.efedsup.distill=false"],
    ["model.width_choices=[0.25, 0.5, 1.0]", "devices.availability=always", "name='my job: #1'",
     "devices.speed_macs_per_s=[0.001, 123456789.5]", "model.kernel_choices=[3, 5, 7]"],
])
def test_to_yaml_round_trips(tmp_path, overrides):
    job = load_job(None, overrides)
    path = tmp_path / "resolved.yaml"
    path.write_text(job.to_yaml())
    assert load_job(str(path)) == job


BAD_SETS = [
    (["bogus=1"], "bogus"),                                # unknown top-level key
    (["train.foo=1"], "train.foo"),                        # unknown nested key
    (["rounds=ten"], "rounds"),                            # wrong type
    (["rounds=true"], "rounds"),                           # a bool is not an int
    (["rounds=7.5"], "rounds"),                            # a float is not an int
    (["rounds=-1"], "rounds"),                             # negative
    (["rounds=0"], "rounds"),                              # zero
    (["clients.per_round=40"], "clients.per_round"),       # more than clients.total (32)
    (["strategy.name=fedprox"], "strategy.name"),          # unknown strategy
    (["data.name=mnist"], "data.name"),                    # unknown data set
    (["rounds"], "rounds"),                                # --set without '='
    (["=5"], "=5"),                                        # --set without a key
    (["model.kernel_choices=[4]"], "model.kernel_choices"),   # even kernel: no centre
    (["model.expand_choices=[1.5]"], "model.expand_choices"),  # expand > 1
    (["model.depths=[2]"], "model.depths"),                # 1 depth for 2 widths
    (["model.widths=[8, 16, 32]"], "model.depths"),        # 3 widths for 2 depths
    (["train=5"], "train"),                                # a section replaced by a scalar
    (["rounds.x=1"], "rounds"),                            # a scalar used as a section
    (["train.lr=-0.1"], "train.lr"),
    (["model.norm=layer"], "model.norm"),
    (["model.space=vgg"], "model.space"),                  # unknown search space
    (["model.widths=[]"], "model.widths"),
    (["devices.memory_mb=[4, 2]"], "devices.memory_mb"),
    (["devices.speed_macs_per_s=[1]"], "devices.speed_macs_per_s"),
    (["strategy.name=fedavg", "strategy.fedavg.arch=ref9"], "strategy.fedavg.arch"),   # eval.subnets 5: ref0..ref4
    (["devices.availability=trace"], "devices.trace"),     # trace without a file
    (["train.precision=fp16"], "train.precision"),         # bf16 or fp32 only
    (["eval.precision=half"], "eval.precision"),
    (["train.memory_format=nhwc"], "train.memory_format"),
]


@pytest.mark.parametrize("overrides, key", BAD_SETS, ids=[" ".join(o) for o, _ in BAD_SETS])
def test_bad_overrides_raise_one_line_config_errors_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        load_job(None, overrides)
    message = str(info.value)
    assert "\n" not in message and key in message


BAD_FILES = [
    ("malformed.yaml", "rounds: [1, 2\n", "line 2"),
    ("tab.yaml", "clients:\n\ttotal: 3\n", "line 2"),
    ("list.yaml", "- rounds\n- 7\n", "mapping"),
    ("scalar.yaml", "just a string\n", "mapping"),
    ("nested.yaml", "train: [1, 2]\n", "train"),
    ("typo.yaml", "clients: {totl: 3}\n", "clients.totl"),
    ("type.yaml", "rounds: ten\n", "rounds"),
]


@pytest.mark.parametrize("name, text, part", BAD_FILES, ids=[n for n, _, _ in BAD_FILES])
def test_bad_job_files_raise_one_line_config_errors(tmp_path, name, text, part):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_job(str(path))
    message = str(info.value)
    assert "\n" not in message and part in message
    if part in ("line 2", "mapping"):
        assert name in message                     # file-level errors name the file


DUPLICATES = [
    ("rounds: 2\nseed: 0\nrounds: 3\n", "key 'rounds' is given twice in one mapping, at lines 1 and 3"),
    ("train:\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.2\n", "key 'lr' is given twice in one mapping, at lines 2 and 4"),
    ("clients: {total: 8, total: 9}\n", "key 'total' is given twice in one mapping, on line 1"),
    ("seed: 0\nstrategy:\n  name: fedavg\n  fedavg: {arch: smallest}\nstrategy: {name: superfed}\n",
     "key 'strategy' is given twice in one mapping, at lines 2 and 5"),
]


@pytest.mark.parametrize("text, expected", DUPLICATES, ids=["top", "nested", "flow", "section"])
def test_a_key_given_twice_is_one_line_naming_the_key_both_lines_and_the_file(tmp_path, text, expected):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_job(str(path))
    assert str(info.value) == f"job file {str(path)!r}: {expected}; keep one"


def test_a_key_given_twice_in_a_set_value_is_an_error_and_merge_keys_may_be_overridden(tmp_path):
    with pytest.raises(ConfigError, match=r"^--set 'clients=\{total: 8, total: 9\}': key 'total' is given twice"):
        load_job(None, ["clients={total: 8, total: 9}"])
    path = tmp_path / "merge.yaml"
    path.write_text("clients: {total: 8, per_round: 4}\n"
                    "devices:\n  <<: {online_prob: 0.5, period_s: 10.0}\n  online_prob: 0.7\n")
    assert load_job(str(path)).devices.online_prob == 0.7


def test_missing_job_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml") as info:
        load_job(str(tmp_path / "nope.yaml"))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        load_job(str(tmp_path))                    # a folder is not a job file


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    assert load_job(None, ["train.lr=1e-3"]).train.lr == 1e-3
    path = tmp_path / "job.yaml"
    path.write_text("devices: {speed_macs_per_s: [5e8, 2e10]}\n")
    assert load_job(str(path)).devices.speed_macs_per_s == (5e8, 2e10)


def test_model_space_picks_the_space_class():
    from hpcfed.assembly.parts import build_space
    from hpcfed.supernet import MobileNetSpace, ResNetSpace
    job = load_job(str(DEFAULT_JOB.parent / "mobilenet_digits.yaml"))
    assert job.model.space == "mobilenet" and job.model.kernel_choices == (3, 5, 7) and job.model.norm == "rms"
    space = build_space(job, (1, 8, 8), 10)
    assert type(space) is MobileNetSpace and space.expand_choices == (0.5, 0.75, 1.0)
    assert type(build_space(load_job(None, ["model.space=resnet"]), (1, 8, 8), 10)) is ResNetSpace


@pytest.mark.parametrize("overrides, message", [
    (["roundz=3"], "roundz: unknown key (did you mean 'rounds'?); accepted keys here: name, seed, rounds"),
    (["train.batchsize=8"], "train.batchsize: unknown key (did you mean 'batch_size'?)"),
    (["model.norm=rmss"], "model.norm = 'rmss': accepted none | bn | rms (did you mean 'rms'?)"),
    (["strategy.name=superfd"], "(did you mean 'superfed'?)"),
    (["model.widths=16,32"], "model.widths = '16,32': expected a list, written [16,32] (in a job file, or "
                             "--set model.widths=[16,32])"),
    (["zzz=1"], "zzz: unknown key; accepted keys here"),   # nothing close: no guess
])
def test_errors_suggest_the_fix(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_job(None, overrides)
    assert message in str(info.value)


def test_edit_distance_and_when_a_guess_is_offered():
    from hpcfed.errors import did_you_mean, edits
    assert edits("kitten", "sitting") == 3 and edits("", "abc") == 3 and edits("rms", "rms") == 0
    assert did_you_mean("roundz", ["seed", "rounds"]) == " (did you mean 'rounds'?)"
    assert did_you_mean("fedprox", ["fedrolex", "fedavg"]) == ""     # three edits in seven letters: no guess
    assert did_you_mean("rms", ["rms"]) == "" and did_you_mean("x", []) == ""
