"""Runs a claim makes after its methods' runs, from what they found (hpcfed.experiments.claims):
architectures trained alone by FedAvg on the same clients and seed, so that architectures are
compared and not the weights a search left.

- :func:`retrained`: each search's chosen architecture;
- :func:`step_zero_references`: every candidate of FedNAS's first step, trained long (the
  reference ranking of ``fednas-rank``, scored on the test set for reporting only);
- :func:`random_architectures`: architectures drawn at random under the search's budget (the
  baseline of ``fednas-random``).
"""
from __future__ import annotations

import numpy as np
import yaml

from hpcfed.assembly.job import build_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.config import JobConfig
from hpcfed.seeding import rng as stream
from hpcfed.strategies.fednas.candidates import measure
from hpcfed.supernet import Arch

EVAL_EVERY = 5           # the runs' test evaluations (reported only): where a ranking settles
RANDOM_BAND = (0.8, 1.0)  # random architectures cost this fraction of the search's target budget


def alone(job: JobConfig, arch: Arch, rounds: int, name: str) -> JobConfig:
    """``job`` as FedAvg of ``arch`` alone for ``rounds`` rounds (same data, clients and seed)."""
    mapping = yaml.safe_load(job.to_yaml())
    mapping["strategy"] = {"name": "fedavg", "fedavg": {"arch": arch.name}}
    mapping.update(rounds=rounds, name=f"{mapping['name']}_{name}")
    mapping["eval"]["every"] = min(EVAL_EVERY, rounds)
    return build_job(mapping)


def retrained(results: dict[str, dict], jobs: dict[str, JobConfig], rounds: int) -> dict[str, JobConfig]:
    """``<method>_retrain``: each search run's chosen architecture trained alone."""
    return {f"{label}_retrain": alone(jobs[label], Arch.from_json(r["attrs"]["chosen_arch"]), rounds, "retrain")
            for label, r in results.items() if "chosen_arch" in r["attrs"]}


def step_zero_references(results: dict[str, dict], jobs: dict[str, JobConfig], rounds: int) -> dict[str, JobConfig]:
    """``reference_<model>``: every candidate of the FedNAS run's first step trained alone (the
    straightforward search's first step proposes the same candidates: the same start and budget)."""
    candidates = results["fednas"]["search"]["candidates"]
    return {f"reference_{int(m)}": alone(jobs["fednas"], Arch.from_json(a), rounds, f"reference_{int(m)}")
            for m, a, step in zip(candidates["model"], candidates["arch_json"], candidates["step"]) if step == 0}


def random_architectures(results: dict[str, dict], jobs: dict[str, JobConfig], rounds: int,
                         count: int) -> dict[str, JobConfig]:
    """``random_<i>``: ``count`` distinct architectures drawn uniformly from the space among those
    costing RANDOM_BAND of the FedNAS run's target budget, each trained alone (and the search's
    choice, ``fednas_retrain``, the same way)."""
    job = jobs["fednas"]
    attrs = results["fednas"]["search"]["attrs"]
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    low, high = RANDOM_BAND[0] * float(attrs["target"]), RANDOM_BAND[1] * float(attrs["target"])
    rng = stream(job.seed, "random-architectures")
    drawn: list[Arch] = []
    for _ in range(100_000):
        arch = space.sample(rng)
        if arch not in drawn and low <= measure(space, arch, str(attrs["budget"])) <= high:
            drawn.append(arch)
            if len(drawn) == count:
                break
    found = {f"random_{i}": alone(job, arch, rounds, f"random_{i}") for i, arch in enumerate(drawn)}
    return {**found, **{k: v for k, v in retrained(results, jobs, rounds).items() if k == "fednas_retrain"}}


def test_accuracy_curve(result: dict) -> np.ndarray:
    """The largest reported subnet's test accuracy at each evaluation of a run trained alone."""
    return np.asarray(result["eval"]["accuracy"])[:, -1]
