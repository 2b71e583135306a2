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
    warmup_rounds: int = 5          # the start architecture on every client before the first step (at most,
                                    # when a warm-up target is set)
    warmup_accuracy: float = 0.0    # > 0: the warm-up ends once the start's validation accuracy reaches it
    warmup_loss: float = 0.0        # > 0: the warm-up ends once the start's validation loss falls to it
    eval_every: int = 2             # rounds between evaluations of the live candidates
    rule: str = "race"              # how candidates are dropped: race (on evidence, hpcfed.strategies.fednas.race)
                                    # | halving (keep the top fraction, drop any delta behind: the simpler reading)
    z: float = 2.0                  # race: drop a candidate trailing the leader by more than z standard errors;
                                    # a step is resolved when its leader is ahead of every other by z
    min_client_epochs: int = 4      # race: no candidate is dropped before this many client-epochs of training
    pool: int = 2                   # evaluations pooled into a score (each client's latest once)
    delta: float = 0.1              # halving: drop candidates whose validation accuracy is below the best's - delta
    keep: float = 0.5               # halving: after each evaluation keep at most ceil(keep x live) candidates
    patience: int = 2               # halving: a step ends when its leader is unchanged for this many evaluations
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
        check_choice(self.rule, f"{key}.rule", ("race", "halving"))
        check(self.z > 0, f"{key}.z", self.z, "a number of standard errors > 0")
        check(self.min_client_epochs >= 0, f"{key}.min_client_epochs", self.min_client_epochs, "an integer >= 0")
        check(0 <= self.warmup_accuracy < 1, f"{key}.warmup_accuracy", self.warmup_accuracy,
              "a validation accuracy in [0, 1) (0 = no accuracy target)")
        check(self.warmup_loss >= 0, f"{key}.warmup_loss", self.warmup_loss, "a validation loss >= 0 (0 = no loss target)")
        check(self.sampled >= 1, f"{key}.sampled", self.sampled, "an integer >= 1")
        for name in ("warmup_rounds", "finetune_rounds"):
            check(getattr(self, name) >= 0, f"{key}.{name}", getattr(self, name), "an integer >= 0")
        for name in ("eval_every", "patience", "fixed_rounds", "pool"):
            check(getattr(self, name) >= 1, f"{key}.{name}", getattr(self, name), "an integer >= 1")
        check(self.max_rounds >= self.eval_every, f"{key}.max_rounds", self.max_rounds,
              f"an integer >= eval_every ({self.eval_every}): a step needs one evaluation")
        check(0 <= self.delta <= 1, f"{key}.delta", self.delta, "an accuracy gap in [0, 1]")
        check(0 < self.keep <= 1, f"{key}.keep", self.keep, "a fraction in (0, 1] (1 = keep all)")
        check(job.data.client_val_fraction > 0, "data.client_val_fraction", job.data.client_val_fraction,
              "a fraction > 0 with strategy fednas: candidates are compared on the clients' validation splits")
        check(job.eval.val_clients > 0, "eval.val_clients", job.eval.val_clients, "an integer > 0 with strategy fednas")
