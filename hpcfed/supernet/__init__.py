"""Elastic supernets: architecture values, the search space, slicing, the network and its costs."""
from hpcfed.supernet.arch import Arch
from hpcfed.supernet.cost import Cost, cost
from hpcfed.supernet.network import ElasticResNet, Subnet
from hpcfed.supernet.slicing import SubnetSpec
from hpcfed.supernet.space import ResNetSpace

__all__ = ["Arch", "Cost", "cost", "ElasticResNet", "Subnet", "SubnetSpec", "ResNetSpace"]
