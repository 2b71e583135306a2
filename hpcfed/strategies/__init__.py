"""Federated strategies, one file each, sharing the round loop of :mod:`hpcfed.engine.server`."""
from hpcfed.strategies.base import ClientSlot, Strategy
from hpcfed.strategies.distreal.strategy import Distreal
from hpcfed.strategies.fedavg import FedAvg
from hpcfed.strategies.feddropout import FederatedDropout
from hpcfed.strategies.fednas.strategy import FedNAS
from hpcfed.strategies.fedrolex import FedRolex
from hpcfed.strategies.fedsup import EFedSup, FedSup
from hpcfed.strategies.fjord import FjORD
from hpcfed.strategies.heterofl import HeteroFL
from hpcfed.strategies.ifedavg import IFedAvg
from hpcfed.strategies.superfed import SuperFed

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (FedAvg, SuperFed, HeteroFL, FedRolex, FederatedDropout,
                                                                 FedSup, EFedSup, FjORD, IFedAvg, FedNAS,
                                                                 Distreal)}


def make_strategy(job, space) -> Strategy:
    return STRATEGIES[job.strategy.name](job, space)


__all__ = ["ClientSlot", "Strategy", "STRATEGIES", "make_strategy"]
