"""FedNAS (Yuan et al.): federated architecture search at a fraction of the naive client cost.

The strategy (:mod:`.strategy`), the candidates a search step proposes (:mod:`.candidates`) and
what a finished search reports (:mod:`.report`, the results group ``search/``).
"""
from hpcfed.strategies.fednas.strategy import FedNAS

__all__ = ["FedNAS"]
