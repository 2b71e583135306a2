"""FedNAS's options (``strategy: {name: fednas, fednas: {...}}``) and their checks; what each phase
does with them is hpcfed.strategies.fednas.strategy."""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.config import StrategyOptions
from hpcfed.config.checks import check, check_choice
from hpcfed.strategies.archs import check_arch_name
from hpcfed.strategies.fednas.candidates import MEASURES


@dataclass(frozen=True)
class FedNASOptions(StrategyOptions):
    start: str = "largest"          # starting architecture: largest | smallest | ref<i>
    budget: str = "macs"            # what the budget counts: macs (forward, per sample) | params
    target: float = 0.5             # final budget as a fraction of the start's cost, in (0, 1)
    target_value: float = 0.0       # or an absolute final budget (MACs or parameters); > 0 overrides target
    shrink: float = 0.25            # first step's budget cut, a fraction of the parent's cost (NetAdapt)
    shrink_decay: float = 0.96      # the cut is multiplied by this every step
    candidates: str = "netadapt"    # netadapt (one dimension of one place per candidate) | sampled
    sampled: int = 8                # sampled: candidates per step
    warmup_rounds: int = 5          # the start architecture on every client before the first step
    eval_every: int = 2             # rounds between evaluations of the live candidates
    delta: float = 0.1              # drop candidates whose validation accuracy is below the best's - delta
    keep: float = 0.5               # after each evaluation keep at most ceil(keep x live) candidates
    patience: int = 2               # a step ends when its leader is unchanged for this many evaluations
    max_rounds: int = 12            # a step ends after this many rounds at most
    finetune_rounds: int = 10       # the chosen architecture on every client after the search
    finetune_from: str = "winner"   # its weights at the start of the final training: winner (the search's) |
                                    # start (the warmed-up start's, sliced: compares architectures alone)
    straightforward: bool = False   # the baseline: every candidate on all clients for fixed_rounds, in turn
    fixed_rounds: int = 4           # straightforward: rounds per candidate

    def check(self, job, key):
        check_arch_name(self.start, f"{key}.start", job)
        check_choice(self.budget, f"{key}.budget", MEASURES)
        check(0 < self.target < 1, f"{key}.target", self.target, "a fraction in (0, 1) of the start's cost")
        check(self.target_value >= 0, f"{key}.target_value", self.target_value, "a budget >= 0 (0 = use target)")
        check(0 < self.shrink < 1, f"{key}.shrink", self.shrink, "a fraction in (0, 1)")
        check(0 < self.shrink_decay <= 1, f"{key}.shrink_decay", self.shrink_decay, "a number in (0, 1]")
        check_choice(self.candidates, f"{key}.candidates", ("netadapt", "sampled"))
        check_choice(self.finetune_from, f"{key}.finetune_from", ("winner", "start"))
        check(self.sampled >= 1, f"{key}.sampled", self.sampled, "an integer >= 1")
        for name in ("warmup_rounds", "finetune_rounds"):
            check(getattr(self, name) >= 0, f"{key}.{name}", getattr(self, name), "an integer >= 0")
        for name in ("eval_every", "patience", "fixed_rounds"):
            check(getattr(self, name) >= 1, f"{key}.{name}", getattr(self, name), "an integer >= 1")
        check(self.max_rounds >= self.eval_every, f"{key}.max_rounds", self.max_rounds,
              f"an integer >= eval_every ({self.eval_every}): a step needs one evaluation")
        check(0 <= self.delta <= 1, f"{key}.delta", self.delta, "an accuracy gap in [0, 1]")
        check(0 < self.keep <= 1, f"{key}.keep", self.keep, "a fraction in (0, 1] (1 = keep all)")
        check(job.data.client_val_fraction > 0, "data.client_val_fraction", job.data.client_val_fraction,
              "a fraction > 0 with strategy fednas: candidates are compared on the clients' validation splits")
        check(job.eval.val_clients > 0, "eval.val_clients", job.eval.val_clients, "an integer > 0 with strategy fednas")
