"""Elastic supernets: architecture values, the search spaces, slicing, the network and its costs."""
from hpcfed.supernet.arch import Arch
from hpcfed.supernet.cost import Cost, cost
from hpcfed.supernet.mobilenet import MobileNetSpace
from hpcfed.supernet.network import ElasticResNet, Subnet
from hpcfed.supernet.slicing import SubnetSpec
from hpcfed.supernet.space import ResNetSpace

SPACES = {space.kind: space for space in (ResNetSpace, MobileNetSpace)}   # model.space -> its class

__all__ = ["Arch", "Cost", "cost", "ElasticResNet", "MobileNetSpace", "Subnet", "SubnetSpec", "ResNetSpace", "SPACES"]
