"""Flower peer of tools/bench_peers.py: the exported FedAvg task in Flower's simulation engine.

Runs in its own virtual environment (torch 2.13.0, flwr[simulation] 1.41.0, numpy; see README.md)
with PYTHONPATH at the hpcfed repository root, so the model is hpcfed's own (``hpcfed.supernet``)
and batch shuffles come from ``hpcfed.seeding``:

    python hpcfed/commands/peers/flower_fedavg.py TASK.npz [--cpus 2] [--client-cpus 1]

Flower's Message API all the way: a ``ClientApp`` whose ``@train`` function runs the local SGD of
hpcfed's ``train_subnet`` (fresh SGD per client and round, the same generator, batches, clipping),
a ``ServerApp`` running ``flwr.serverapp.strategy.FedAvg`` (weighted by ``num-examples``) subclassed
only so that round r trains exactly ``cohorts[r]``, and ``run_simulation`` with one supernode per
client on the Ray backend. Supernode i holds client i's data (its ``partition-id``); the ServerApp
learns which node id carries which partition with one query message per node before round 1.
The final model is evaluated on the server on the test set in batches of ``eval_batch_size``.

Prints one JSON line on stdout: peer, wall_s (process start to end), train_s (the federated rounds
and the final evaluation), sim_s (the whole run_simulation call: Ray start, actors, discovery,
rounds, shutdown), accuracy, samples, rounds, workers (Ray actors). Everything else (Flower's and
Ray's logs included) goes to stderr.
"""
from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")      # no internet here: never post events
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from hpcfed.seeding import torch_generator  # noqa: E402
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec  # noqa: E402


def log(*args) -> None:
    print("flower_fedavg:", *args, file=sys.stderr, flush=True)


def process_start_time() -> float:
    """time.time() at which this process started (from /proc; falls back to now)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


# --- the task: data, model, hyper-parameters (loaded once per process: driver and each actor) ---

class Task:
    def __init__(self, path: str):
        z = np.load(path)
        self.meta = json.loads(str(z["meta"][()]))
        self.x_train = torch.from_numpy(z["x_train"].astype(np.float32))
        self.y_train = torch.from_numpy(z["y_train"].astype(np.int64))
        self.x_test = torch.from_numpy(z["x_test"].astype(np.float32))
        self.y_test = torch.from_numpy(z["y_test"].astype(np.int64))
        self.offsets = z["client_offsets"].astype(np.int64)
        self.indices = z["client_indices"].astype(np.int64)
        self.cohorts = z["cohorts"].astype(np.int64)
        self.init_flat = torch.from_numpy(z["init_flat"].astype(np.float32))
        self.num_clients = len(self.offsets) - 1
        self.rounds = int(self.meta["rounds"])
        if self.cohorts.shape[0] != self.rounds:
            raise SystemExit(f"flower_fedavg: cohorts has {self.cohorts.shape[0]} rounds, meta says {self.rounds}")
        if self.cohorts.size and not (0 <= self.cohorts.min() and self.cohorts.max() < self.num_clients):
            raise SystemExit(f"flower_fedavg: cohorts name clients outside 0..{self.num_clients - 1}")
        self.model = self.build_model()
        self._client_data: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def build_model(self) -> torch.nn.Module:
        sp = {k: tuple(v) if isinstance(v, list) else v for k, v in self.meta["space"].items()}
        model = ElasticResNet(ResNetSpace(**sp)).extract(SubnetSpec(Arch.from_dict(self.meta["arch"])))
        flat, o = self.init_flat, 0
        with torch.no_grad():
            for w in model.weights:
                n = w.numel()
                w.data.copy_(flat[o:o + n].view_as(w))
                o += n
        if o != flat.numel():
            raise SystemExit(f"flower_fedavg: init_flat has {flat.numel()} values, the model {o}")
        return model

    def client_data(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if k not in self._client_data:
            rows = torch.from_numpy(self.indices[self.offsets[k]:self.offsets[k + 1]].copy())
            self._client_data[k] = (self.x_train[rows], self.y_train[rows])
        return self._client_data[k]


_TASKS: dict[str, Task] = {}


def get_task(path: str) -> Task:
    if path not in _TASKS:
        _TASKS[path] = Task(path)
    return _TASKS[path]


def local_train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, meta: dict, r: int, k: int) -> int:
    """hpcfed's train_subnet for client k in round r (0-based); returns samples processed."""
    params = list(model.weights)
    opt = torch.optim.SGD(params, lr=meta["lr"])
    generator = torch_generator(meta["seed"], "train", r, k)
    n, bs, clip = len(y), int(meta["batch_size"]), float(meta["clip_norm"])
    seen = 0
    for _ in range(int(meta["local_epochs"])):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            seen += len(idx)
    return seen


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Top-1 accuracy in fixed batches (the model's BN uses each batch's statistics)."""
    correct = 0
    for start in range(0, len(y), batch_size):
        correct += int((model(x[start:start + batch_size]).argmax(dim=1) == y[start:start + batch_size]).sum())
    return correct / len(y)


# --- ClientApp: one per supernode; supernode i (partition-id i) is client i ---

client_app = ClientApp()


@client_app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server this node's partition (= client id); load the task while at it."""
    torch.set_num_threads(1)
    get_task(str(msg.content["config"]["task"]))
    pid = int(context.node_config["partition-id"])
    return Message(RecordDict({"info": MetricRecord({"partition-id": pid})}), reply_to=msg)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    cfg = msg.content["config"]
    task = get_task(str(cfg["task"]))
    k, r = int(context.node_config["partition-id"]), int(cfg["round"])
    if k not in cfg["cohort"]:
        raise RuntimeError(f"node of client {k} asked to train in round {r}, cohort {list(cfg['cohort'])}")
    model = task.model
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = task.client_data(k)
    seen = local_train(model, x, y, task.meta, r, k)
    metrics = MetricRecord({"num-examples": len(y), "samples": seen})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)


# --- ServerApp: FedAvg that trains exactly cohorts[r] in round r ---

class CohortFedAvg(FedAvg):
    """flwr's FedAvg (aggregation unchanged) whose round r samples the nodes of cohorts[r]."""

    def __init__(self, task_path: str, cohorts: np.ndarray, node_of_client: dict[int, int]):
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=len(node_of_client))
        self.task_path, self.cohorts, self.node_of_client = task_path, cohorts, node_of_client
        self.samples = 0
        self.round_started = time.perf_counter()

    def configure_train(self, server_round, arrays, config, grid):
        r = server_round - 1
        cohort = [int(c) for c in self.cohorts[r]]
        cfg = ConfigRecord({"task": self.task_path, "round": r, "cohort": cohort, "server-round": server_round})
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: cfg})
        self.round_started = time.perf_counter()
        return self._construct_messages(record, [self.node_of_client[c] for c in cohort], MessageType.TRAIN)

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        bad = [m for m in replies if m.has_error()]
        if bad:
            raise RuntimeError(f"round {server_round}: {len(bad)} client(s) failed: {bad[0].error.reason}")
        # Aggregate in cohort order, not arrival order, so that reruns give the same bits.
        position = {self.node_of_client[int(c)]: i for i, c in enumerate(self.cohorts[server_round - 1])}
        replies.sort(key=lambda m: position[m.metadata.src_node_id])
        self.samples += sum(int(m.content["metrics"]["samples"]) for m in replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        log(f"round {server_round}/{len(self.cohorts)} {time.perf_counter() - self.round_started:.2f} s")
        return arrays, metrics


server_app = ServerApp()
RESULT: dict = {}    # what the ServerApp (a thread of this process) hands back to main()


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    task_path = RESULT["task_path"]
    task = get_task(task_path)
    t0 = time.perf_counter()
    while len(node_ids := sorted(grid.get_node_ids())) < task.num_clients:
        time.sleep(0.05)
    queries = [Message(RecordDict({"config": ConfigRecord({"task": task_path})}), dst_node_id=nid,
                       message_type=MessageType.QUERY) for nid in node_ids]
    node_of_client: dict[int, int] = {}
    for reply in grid.send_and_receive(queries):
        if reply.has_error():
            raise RuntimeError(f"query failed: {reply.error.reason}")
        node_of_client[int(reply.content["info"]["partition-id"])] = reply.metadata.src_node_id
    if sorted(node_of_client) != list(range(task.num_clients)):
        raise RuntimeError(f"partitions found: {sorted(node_of_client)}; expected 0..{task.num_clients - 1}")
    RESULT["discovery_s"] = time.perf_counter() - t0
    log(f"node ids of {len(node_of_client)} clients found in {RESULT['discovery_s']:.2f} s")

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round != task.rounds:
            return None
        model = task.model
        model.load_state_dict(arrays.to_torch_state_dict())
        acc = accuracy(model, task.x_test, task.y_test, int(task.meta["eval_batch_size"]))
        RESULT["accuracy"] = acc
        return MetricRecord({"accuracy": acc})

    strategy = CohortFedAvg(task_path, task.cohorts, node_of_client)
    t1 = time.perf_counter()
    strategy.start(grid, ArrayRecord(task.model.state_dict()), num_rounds=task.rounds, evaluate_fn=evaluate_fn)
    RESULT["train_s"] = time.perf_counter() - t1
    RESULT["samples"] = strategy.samples


def main(argv: list[str] | None = None) -> int:
    started = process_start_time()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", help="task file written by tools/bench_peers.py")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs Ray may use (default 2)")
    parser.add_argument("--client-cpus", type=float, default=1.0,
                        help="CPUs per ClientApp actor (default 1: --cpus actors)")
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w")      # the JSON line; everything else (Ray's workers too) -> stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from flwr.simulation import run_simulation

    task_path = os.path.abspath(args.task)
    task = get_task(task_path)
    torch.set_num_threads(args.cpus)     # the server's final evaluation; actors use 1 thread each
    RESULT.clear()
    RESULT["task_path"] = task_path
    actors = int(args.cpus // args.client_cpus)
    log(f"{task.num_clients} clients, {task.rounds} rounds of {task.cohorts.shape[1]}, "
        f"{task.init_flat.numel()} parameters, {actors} actor(s) of {args.client_cpus} CPU")
    t0 = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=task.num_clients,
                   backend_config={"client_resources": {"num_cpus": args.client_cpus, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": args.cpus, "num_gpus": 0,
                                                 "logging_level": "error", "log_to_driver": True}})
    sim_s = time.perf_counter() - t0
    if "accuracy" not in RESULT:
        log("the simulation ended without a final evaluation (see the log above)")
        return 1
    result = {"peer": "flower", "wall_s": time.time() - started, "train_s": RESULT["train_s"],
              "accuracy": RESULT["accuracy"], "samples": RESULT["samples"], "rounds": task.rounds,
              "sim_s": sim_s, "workers": actors}
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    # Re-import under the module's own name, so that Ray pickles the apps by reference and every
    # actor imports this file once (its task cache then lives for the whole run).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import flower_fedavg
    sys.exit(flower_fedavg.main())
