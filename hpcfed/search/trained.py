"""A finished run as a trained supernet: its job, space, final weights and data, rebuilt from RUN.h5.

Tools that work on what a run trained (tools/search.py, tools/export.py) open it here. The job is
rebuilt from the file's ``config_yaml`` and the data from that job (the same seeded splits the run
used), the weights come from ``models/<id>`` (hpcfed.record.results, written when a run finishes), and
evaluation calibrates normalisation statistics exactly as the run's own evaluation did
(``eval.calibration_samples`` training samples, hpcfed.learning.evaluation), so a subnet scores the same
here as in the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml

from hpcfed.assembly.job import build_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.config import JobConfig
from hpcfed.data import FederatedData
from hpcfed.data.splits import calibration_sample
from hpcfed.errors import ConfigError, HpcfedError
from hpcfed.learning.precision import eval_precision
from hpcfed.record import live
from hpcfed.strategies import STRATEGIES, Strategy
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec


@dataclass
class TrainedRun:
    """What a finished run leaves: its job, the weights of every model, the reference subnets."""

    path: Path
    job: JobConfig
    models: dict[int, np.ndarray]                 # model id -> float32 (P,) supernet weights
    references: list[tuple[str, Arch, int]]       # (name, architecture, model) of every reference subnet
    attrs: dict

    def data(self) -> FederatedData:
        """The run's data, rebuilt from its job (same seeded splits)."""
        return load_data(self.job)

    def space(self, data: FederatedData) -> ResNetSpace:
        return build_space(self.job, data.input_shape, data.num_classes)

    def network(self, space: ResNetSpace, model_id: int | None = None) -> ElasticResNet:
        """The supernet holding model ``model_id``'s final weights (default: the model of the largest
        reference subnet, the only model of most runs; see :attr:`default_model`)."""
        model_id = self.default_model if model_id is None else model_id
        if model_id not in self.models:
            raise HpcfedError(f"{str(self.path)!r}: model {model_id} is not in the file; it holds models "
                              f"{', '.join(map(str, sorted(self.models)))}")
        network = ElasticResNet(space)
        weights = torch.from_numpy(self.models[model_id])
        if weights.numel() != network.num_params:
            raise HpcfedError(f"{str(self.path)!r}: model {model_id} has {weights.numel()} weights, the job's supernet "
                              f"{network.num_params}; the file does not match the job it records")
        network.flat.copy_(weights)
        return network.eval()

    @property
    def default_model(self) -> int:
        """The model of the largest reference subnet; for a run without references, the model its strategy
        says it deploys (Strategy.final_model, e.g. a search's chosen one), else the last model."""
        if self.references:
            return self.references[-1][2]
        final = STRATEGIES.get(str(self.attrs.get("strategy")), Strategy).final_model(self.attrs)
        return max(self.models) if final is None else final

    def calibration(self, data: FederatedData) -> torch.Tensor:
        """The training inputs the run's evaluation calibrated normalisation statistics on."""
        return calibration_sample(data, self.job.eval.calibration_samples, self.job.seed)

    @property
    def eval_precision(self) -> str:
        """The precision the run's evaluations used (hpcfed.learning.precision)."""
        return eval_precision(self.job.train.precision, self.job.eval.precision)

    def reference_specs(self) -> list[SubnetSpec]:
        return [SubnetSpec(arch) for _, arch, _ in self.references]


def open_run(path: str | Path) -> TrainedRun:
    """Read a finished run's results file; one-line :class:`HpcfedError` for anything else."""
    path = Path(path)
    if not path.exists():
        raise HpcfedError(f"run file {str(path)!r} does not exist; give a results file written by python -m hpcfed.run")
    attrs, models, names, archs, owners = live.read(path, lambda f: _read_trained(f, path))
    try:
        job = build_job(yaml.safe_load(attrs["config_yaml"]))
    except ConfigError as err:
        raise HpcfedError(f"run file {str(path)!r}: its job no longer loads ({err})") from None
    return TrainedRun(path, job, models, list(zip(names, archs, owners)), attrs)


def _read_trained(f: h5py.File, path: Path) -> tuple:
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    if "config_yaml" not in attrs or "eval" not in f:
        raise HpcfedError(f"run file {str(path)!r} is not an hpcfed results file (no job or eval table)")
    if "models" not in f:
        raise HpcfedError(f"run file {str(path)!r} holds no trained supernet (status {attrs.get('status', '?')!r}; the "
                          "weights are written when a run finishes): give a finished run's results file")
    models = {int(k): f["models"][k][()] for k in f["models"]}
    names = [n.decode() if isinstance(n, bytes) else n for n in f["eval/subnet_names"][()]]
    archs = [Arch.from_json(a.decode() if isinstance(a, bytes) else a) for a in f["eval/subnet_archs"][()]]
    owners = [int(m) for m in f["eval/subnet_models"][()]]
    return attrs, models, names, archs, owners
