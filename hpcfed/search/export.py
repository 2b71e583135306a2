"""A trained subnet as a standalone ``torch.export`` program that plain torch runs (tools/export.py).

The subnet's weights are copied out of the run's final supernet (``ElasticResNet.extract``) and,
for ``model.norm: bn``, its normalisation statistics are calibrated exactly as the run's own
evaluation calibrated them (hpcfed.search.trained, hpcfed.learning.evaluation) and baked in as buffers, so the
program needs only an input batch (any batch size) and every sample is scored on its own, as in
the run. The program's logits are checked against hpcfed's evaluation before anything is written;
the ``.pt2`` file and its ``.json`` description are written under temporary names in the same
folder and renamed only when both are complete.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from hpcfed.errors import ConfigError, HpcfedError
from hpcfed.learning.evaluation import calibrate
from hpcfed.record import live
from hpcfed.search.trained import TrainedRun, open_run
from hpcfed.supernet import Arch, Subnet, SubnetSpec, cost
from hpcfed.supernet.norm import NormStatistics
from hpcfed.supernet.space import ResNetSpace

FRONT = "post_search/arch_json"   # tools/search.py's front: JSON of Arch.to_dict per member, in front order
CHECK_SAMPLES = 512               # test images on which the program is checked against hpcfed's evaluation
TOLERANCE = 1e-5                  # largest accepted absolute difference of a logit


class Deployable(nn.Module):
    """A subnet with its frozen normalisation statistics as buffers: input batch in, logits out."""

    def __init__(self, subnet: Subnet, statistics: NormStatistics | None):
        super().__init__()
        self.subnet = subnet.requires_grad_(False)
        self.layers = sorted(statistics.fixed) if statistics is not None else []
        for layer in self.layers:   # buffers named after their layer: stage0.block1.norm2 -> stage0_block1_norm2_mean
            for kind, value in zip(("mean", "var"), statistics.fixed[layer]):
                self.register_buffer(_buffer(layer, kind), value.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        statistics = None
        if self.layers:
            statistics = NormStatistics()
            statistics.fixed = {layer: (getattr(self, _buffer(layer, "mean")), getattr(self, _buffer(layer, "var")))
                                for layer in self.layers}
        return self.subnet(x, statistics=statistics)


def _buffer(layer: str, kind: str) -> str:
    return f"{layer.replace('.', '_')}_{kind}"


@dataclass
class Choice:
    """The architecture to export, how it was named, and the model whose weights it takes."""

    arch: Arch
    label: str     # how it was chosen: --arch NAME or --front I
    model: int


def parse_arch(name: str, space: ResNetSpace) -> Arch:
    """An architecture name (Arch.name) of ``space`` (hpcfed.supernet.space.ResNetSpace.named)."""
    return space.named(name)


def read_front(path: Path) -> list[Arch]:
    """The post-training search front recorded in the results file (tools/search.py)."""
    rows = live.read(path, lambda f: _front(f, path))
    try:
        return [Arch.from_json(a.decode() if isinstance(a, bytes) else a) for a in rows]
    except (ValueError, TypeError) as err:   # bad JSON (a bad architecture is a ConfigError: one line already)
        raise HpcfedError(f"run file {str(path)!r}: {FRONT} does not hold architecture JSON ({err})") from None


def _front(f, path: Path):
    if FRONT not in f:
        raise HpcfedError(f"run file {str(path)!r} has no search front ({FRONT}); run tools/search.py on it first")
    return f[FRONT][()]


def choose(run: TrainedRun, space: ResNetSpace, arch: str | None, front: int | None, model: int | None) -> Choice:
    """Resolve ``--arch NAME`` or ``--front I`` and ``--model ID`` (one-line HpcfedError for bad values)."""
    if arch is not None:
        label, chosen = f"--arch {arch}", _named(run, space, arch)
    else:
        members = read_front(run.path)
        if not 0 <= front < len(members):
            raise HpcfedError(f"--front {front}: the run's search front has {len(members)} members; "
                              f"accepted 0..{len(members) - 1}")
        try:
            chosen = space.validate(members[front])
        except ConfigError as err:
            raise HpcfedError(f"--front {front}: not in the run's space ({err})") from None
        label = f"--front {front}"
    owners = sorted({m for _, a, m in run.references if a == chosen})
    if model is None and len(owners) > 1:
        raise HpcfedError(f"{label}: {chosen.name} is a reference subnet of models {owners}; choose one with --model")
    if model is None:
        model = owners[0] if owners else run.default_model
    if model not in run.models:
        raise HpcfedError(f"--model {model}: not in the run; accepted {', '.join(map(str, sorted(run.models)))}")
    return Choice(chosen, label, model)


def _named(run: TrainedRun, space: ResNetSpace, name: str) -> Arch:
    for ref_name, arch, _ in run.references:
        if ref_name == name:
            return arch
    if name in ("largest", "smallest"):
        return getattr(space, name)()
    try:
        Arch.from_name(name)
    except ConfigError:
        names = ", ".join(dict.fromkeys(n for n, _, _ in run.references))
        raise HpcfedError(f"--arch {name!r}: unknown; accepted the run's reference subnets ({names}), largest, "
                          "smallest, or an architecture of its space named as d<depth per stage>-e<expand per "
                          "active block>-k<kernel per active block>-w<width>, e.g. d2,1-e.25,.5,1-k3,3,5-w1") from None
    try:
        return parse_arch(name, space)
    except ConfigError as err:
        raise HpcfedError(f"--arch {name!r}: not in the run's space ({err})") from None


def check_out(out: Path, overwrite: bool) -> Path:
    """The ``.json`` path beside ``out``; one-line HpcfedError unless both may be written."""
    if out.suffix != ".pt2":
        raise HpcfedError(f"--out {str(out)!r}: give a file name ending in .pt2 (the .json goes beside it)")
    if not out.parent.is_dir():
        raise HpcfedError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist; create it first")
    if not os.access(out.parent, os.W_OK):
        raise HpcfedError(f"--out {str(out)!r}: folder {str(out.parent)!r} is not writable")
    meta = out.with_suffix(".json")
    for path in (out, meta):
        if path.is_dir() or (path.exists() and not overwrite):
            raise HpcfedError(f"--out {str(out)!r}: {str(path)!r} already exists; give another name or --overwrite")
    return meta


def export(run_path: str | Path, out: str | Path, arch: str | None = None, front: int | None = None,
           model: int | None = None, overwrite: bool = False) -> dict:
    """Write ``out`` (.pt2) and its .json description; returns the description."""
    out = Path(out)
    if (arch is None) == (front is None):
        raise HpcfedError("give exactly one of --arch NAME and --front I"
                          + (f" (got --arch {arch!r} and --front {front})" if arch is not None else ""))
    meta_path = check_out(out, overwrite)
    run = open_run(run_path)
    data = run.data()
    space = run.space(data)
    choice = choose(run, space, arch, front, model)
    network = run.network(space, choice.model)
    spec = SubnetSpec(choice.arch)
    calibration = run.calibration(data) if space.norm == "bn" else torch.empty(0)
    statistics = calibrate(network, spec, calibration)
    wrapper = Deployable(network.extract(spec), statistics).eval()
    example = data.inputs(data.test_inputs[:2])   # normalise only the samples used
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(wrapper, (example,), dynamic_shapes=({0: batch},))
        x = data.inputs(data.test_inputs[:CHECK_SAMPLES])
        difference = float((program.module()(x) - network(x, spec, statistics=statistics)).abs().max())
    if not difference <= TOLERANCE:
        raise RuntimeError(f"the exported program's logits differ from hpcfed's by {difference:.3g} > {TOLERANCE}")
    c = cost(space, spec)
    meta = describe(run, space, choice, c.macs, c.params, len(calibration), data.name)
    meta["check"] = {"test_samples": len(x), "max_abs_logit_difference": difference}
    _write(out, meta_path, lambda p: torch.export.save(program, p), json.dumps(meta, indent=2) + "\n")
    return meta


def describe(run: TrainedRun, space: ResNetSpace, choice: Choice, macs: int, params: int,
             calibration_samples: int, data_name: str) -> dict:
    names = {a: n for n, a, m in run.references if m == choice.model}
    return {
        "name": choice.arch.name,
        "selected_by": choice.label,
        "reference_subnet": names.get(choice.arch),
        "arch": choice.arch.to_dict(),
        "space": space.kind,
        "macs_per_sample": macs,
        "params": params,
        "input_shape": ["batch", *space.input_shape],
        "input": f"float32 {data_name} inputs as hpcfed.data gives them (standardised per channel "
                 "with the training pool's mean and std)",
        "num_classes": space.num_classes,
        "normalization": space.norm,
        "calibration": (f"bn statistics frozen from {calibration_samples} training samples of the run (eval."
                        "calibration_samples: the sample its own test-set evaluation calibrated on)"
                        if space.norm == "bn" else f"none: {space.norm} normalisation keeps no statistics"),
        "run_file": str(Path(run.path).resolve()),
        "final_model_sha256": run.attrs.get("final_model_sha256", ""),
        "model": choice.model,
    }


def _write(out: Path, meta_path: Path, save, text: str) -> None:
    """Write both files under temporary names in their folder, then rename both; on failure remove them."""
    temps = [path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}") for path in (out, meta_path)]
    try:
        save(str(temps[0]))
        temps[1].write_text(text)
        os.replace(temps[0], out)
        os.replace(temps[1], meta_path)
    except OSError as err:
        raise HpcfedError(f"--out {str(out)!r}: cannot write there ({err.strerror}: {err.filename})") from None
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
