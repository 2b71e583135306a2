"""Benchmark peer: FedAvg on an hpcfed task file, trained with pfl-research (pfl 0.6.0).

Runs in pfl's own venv (torch 2.13.0 + ``pfl[pytorch]==0.6.0``) with PYTHONPATH at the hpcfed
repository root; only ``hpcfed.supernet`` and ``hpcfed.seeding`` (torch + numpy) are imported.

    python hpcfed/commands/peers/pfl_fedavg.py TASK.npz
    torchrun --standalone --nproc_per_node 2 hpcfed/commands/peers/pfl_fedavg.py TASK.npz

Prints one JSON line on stdout (rank 0 only); everything else, pfl's per-round metrics
included, goes to stderr.

What is pfl's and what is not:

- model: the task's Subnet in a ``torch.nn.Module`` with ``loss``/``metrics``, wrapped in
  ``pfl.model.pytorch.PyTorchModel``; local optimizer ``torch.optim.SGD`` (no momentum or weight
  decay) created by pfl per user; central optimizer SGD(lr=1), so the update is w + average delta.
- local training: pfl's SGD bridge (``do_multiple_epochs_of``) with ``NNTrainHyperParams``
  (epochs, lr, batch size, ``local_max_grad_norm`` = clip_norm, one step per batch).
  pfl's ``Dataset.iter`` does not shuffle (the same sequential batches every epoch), so the user
  dataset is a ``pfl.data.dataset.Dataset`` subclass whose ``iter`` yields hpcfed's batches:
  ``torch.randperm(n, generator=torch_generator(seed, "train", r, k))`` per epoch, batches
  ``order[s:s+B]``, batches smaller than 2 (BN) / 1 skipped.
- aggregation: ``FederatedAveraging`` + ``SimulatedBackend`` with ``WeightByDatapoints``
  (sum of n_k * delta_k / sum of n_k, all-reduced across workers by pfl's SumAggregator).
- client selection: ``FederatedDataset`` with a custom user sampler (a pfl extension point) that
  returns exactly ``cohorts[r]``; a callback points it at the next round's row.
  pfl assigns cohort position i to worker ``i % world_size``.
- evaluation: pfl's per-user evaluation of round 0 is switched off (hpcfed does none); after
  training, the central model is evaluated with ``PyTorchModel.evaluate`` on the whole test set in
  sequential batches of eval_batch_size (BN uses batch statistics, as in hpcfed), on every worker.
"""
from __future__ import annotations

import os
import time

T_START = time.time()   # fallback if /proc is unavailable


def _process_start(pid: int) -> float | None:
    """Wall-clock time (epoch seconds) at which process ``pid`` started, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])   # field 22 (starttime), counted after "pid (comm)"
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# Under torchrun the peer's wall time starts with the launcher (our parent process).
_start = _process_start(os.getppid() if "TORCHELASTIC_RUN_ID" in os.environ else os.getpid())
T_START = min(T_START, _start) if _start is not None else T_START

import json  # noqa: E402
import sys  # noqa: E402

# Everything printed by anyone (pfl's platform writes per-round metrics to stdout) goes to stderr;
# only the final JSON line goes to the real stdout.
_REAL_STDOUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

from hpcfed.seeding import torch_generator  # noqa: E402
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec  # noqa: E402


def load_task(path: str) -> dict:
    with np.load(path, allow_pickle=False) as z:
        task = {k: z[k] for k in z.files}
    task["meta"] = json.loads(str(task["meta"]))
    return task


def build_subnet(meta: dict, init_flat: np.ndarray) -> nn.Module:
    kw = dict(meta["space"])
    for key in ("input_shape", "widths", "depths", "strides", "expand_choices", "kernel_choices",
                "width_choices"):
        if key in kw:
            kw[key] = tuple(kw[key])
    space = ResNetSpace(**kw)
    sub = ElasticResNet(space).extract(SubnetSpec(Arch.from_dict(meta["arch"])))
    flat = torch.from_numpy(np.ascontiguousarray(init_flat, dtype=np.float32))
    total = sum(w.numel() for w in sub.weights)
    if total != flat.numel():
        raise SystemExit(f"init_flat has {flat.numel()} values, the subnet {total}")
    with torch.no_grad():
        offset = 0
        for w in sub.weights:
            w.copy_(flat[offset:offset + w.numel()].view_as(w))
            offset += w.numel()
    return sub


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: pfl_fedavg.py TASK.npz")
    task = load_task(argv[1])
    meta = task["meta"]
    seed = int(meta["seed"])
    rounds, bs, epochs = int(meta["rounds"]), int(meta["batch_size"]), int(meta["local_epochs"])
    lr, clip = float(meta["lr"]), float(meta["clip_norm"])
    cohorts = task["cohorts"].astype(np.int64)
    if cohorts.shape[0] < rounds:
        raise SystemExit(f"cohorts has {cohorts.shape[0]} rows for {rounds} rounds")
    cohort_size = int(cohorts.shape[1])

    # pfl's internal RandomStates (dataset, backend, algorithm) are drawn from NumPy's global
    # state: it must be the same on every worker.
    np.random.seed(seed)
    torch.manual_seed(seed)

    # Importing pfl's PyTorch model sets the framework and, under torchrun, joins the gloo group.
    from pfl.aggregate.simulate import SimulatedBackend
    from pfl.aggregate.weighting import WeightByDatapoints
    from pfl.algorithm import FederatedAveraging, NNAlgorithmParams
    from pfl.callback.base import TrainingProcessCallback
    from pfl.data.dataset import Dataset
    from pfl.data.federated_dataset import FederatedDataset
    from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams
    from pfl.internal.ops.selector import get_default_framework_module as get_ops
    from pfl.metrics import Metrics, Weighted
    from pfl.model.pytorch import PyTorchModel

    dist = get_ops().distributed
    rank, world = dist.global_rank, dist.world_size

    subnet = build_subnet(meta, task["init_flat"])
    min_batch = 2 if subnet.space.norm == "bn" else 1   # hpcfed.learning.training's rule

    class PflNet(nn.Module):
        """The Subnet with the ``loss``/``metrics`` pair pfl's PyTorchModel needs."""

        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net
            self.samples = 0   # client training samples this worker pushed through loss()

        def forward(self, x):
            return self.net(x)

        def loss(self, x, y, eval=False):   # noqa: A002 (pfl's signature)
            self.samples += len(y)
            return F.cross_entropy(self.net(x), y)

        @torch.no_grad()
        def metrics(self, x, y, eval=False):   # noqa: A002
            logits = self.net(x)
            correct = float((logits.argmax(dim=1) == y).sum())
            loss = float(F.cross_entropy(logits, y, reduction="sum"))
            return {"accuracy": Weighted(correct, len(y)), "loss": Weighted(loss, len(y))}

    class ShuffledUserDataset(Dataset):
        """A user's data whose training ``iter`` reproduces hpcfed's per-epoch shuffles.

        pfl's ``Dataset.iter`` slices the data in order, the same every epoch; pfl calls ``iter``
        once per local epoch, so each call draws the next permutation from the user's generator.
        Calls with another batch size (evaluation) get pfl's sequential batches.
        """

        def __init__(self, x, y, user_id, generator):
            super().__init__((x, y), user_id=user_id)
            self._x, self._y, self._g = x, y, generator

        def iter(self, batch_size):   # noqa: A003
            if batch_size != bs:
                yield from super().iter(batch_size)
                return
            n = len(self._y)
            order = torch.randperm(n, generator=self._g)
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                if len(idx) < min_batch:
                    continue
                yield self._x[idx], self._y[idx]

    x_train = torch.from_numpy(task["x_train"].astype(np.float32))
    y_train = torch.from_numpy(task["y_train"].astype(np.int64))
    offsets, indices = task["client_offsets"].astype(np.int64), task["client_indices"].astype(np.int64)
    client_data = []
    for k in range(len(offsets) - 1):
        idx = torch.from_numpy(indices[offsets[k]:offsets[k + 1]])
        client_data.append((x_train[idx].contiguous(), y_train[idx].contiguous()))

    class CohortSampler:
        """pfl user sampler (``callable() -> user_id``) that returns exactly ``cohorts[r]``.

        pfl draws ``world_size`` users per ``next`` and keeps the one of its rank, so in round r
        worker w is handed cohort positions w, w + W, ...; the call counter restarts each round
        (extra draws past the cohort, when W does not divide K, are never trained).
        """

        def __init__(self):
            self.round, self.calls = 0, 0

        def start_round(self, r: int) -> None:
            self.round, self.calls = r, 0

        def __call__(self) -> int:
            row = cohorts[min(self.round, len(cohorts) - 1)]
            k = int(row[self.calls]) if self.calls < len(row) else int(row[0])
            self.calls += 1
            return k

    sampler = CohortSampler()

    def make_user(k: int):
        x, y = client_data[k]
        return ShuffledUserDataset(x, y, str(k), torch_generator(seed, "train", sampler.round, k))

    class RoundCursor(TrainingProcessCallback):
        def on_train_begin(self, *, model):
            sampler.start_round(0)
            return Metrics()

        def after_central_iteration(self, aggregate_metrics, model, *, central_iteration):
            sampler.start_round(central_iteration + 1)
            return False, Metrics()

    class FedAvgNoUserEval(FederatedAveraging):
        """pfl's FederatedAveraging without the per-user evaluation pfl does in round 0."""

        def get_next_central_contexts(self, *args, **kwargs):
            import dataclasses
            contexts, model, metrics = super().get_next_central_contexts(*args, **kwargs)
            if contexts is not None:
                contexts = tuple(dataclasses.replace(c, do_evaluation=False) for c in contexts)
            return contexts, model, metrics

    train_data = FederatedDataset(make_user, sampler)
    backend = SimulatedBackend(training_data=train_data, val_data=None,
                               postprocessors=[WeightByDatapoints()])
    net = PflNet(subnet)
    model = PyTorchModel(model=net, local_optimizer_create=torch.optim.SGD,
                         central_optimizer=torch.optim.SGD(net.parameters(), lr=1.0))
    train_params = NNTrainHyperParams(local_num_epochs=epochs, local_learning_rate=lr,
                                      local_batch_size=bs,
                                      local_max_grad_norm=clip if clip > 0 else None)
    algo_params = NNAlgorithmParams(central_num_iterations=rounds, evaluation_frequency=rounds + 1,
                                    train_cohort_size=cohort_size, val_cohort_size=0)
    print(f"pfl: rank {rank}/{world}, {len(client_data)} clients, {rounds} rounds x {cohort_size}, "
          f"{sum(w.numel() for w in subnet.weights)} parameters", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    model = FedAvgNoUserEval().run(algorithm_params=algo_params, backend=backend, model=model,
                                   model_train_params=train_params, callbacks=[RoundCursor()])
    train_s = time.perf_counter() - t0

    samples = torch.tensor([float(net.samples)])
    samples = int(dist.all_reduce([samples])[0].item())

    test = Dataset((torch.from_numpy(task["x_test"].astype(np.float32)),
                    torch.from_numpy(task["y_test"].astype(np.int64))))
    metrics = model.evaluate(test, eval_params=NNEvalHyperParams(local_batch_size=int(meta["eval_batch_size"])))
    accuracy = float(metrics["accuracy"].overall_value)

    if rank == 0:
        _REAL_STDOUT.write(json.dumps({"peer": "pfl", "workers": world, "wall_s": round(time.time() - T_START, 3),
                                       "train_s": round(train_s, 3), "accuracy": accuracy,
                                       "samples": samples, "rounds": rounds}) + "\n")
        _REAL_STDOUT.flush()


if __name__ == "__main__":
    main(sys.argv)
