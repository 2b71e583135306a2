"""DISTREAL (Rapp et al., AAAI 2022): per-layer filter dropout chosen on the device from the compute
it has now.

The strategy (:mod:`.strategy`), its offline design-space exploration of dropout vectors
(:mod:`.dse`) and the measured time of a training step under a vector (:mod:`.timing`).
"""
from hpcfed.strategies.distreal.strategy import Distreal

__all__ = ["Distreal"]
