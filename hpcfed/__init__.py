"""hpcfed: MPI-native federated training of weight-shared supernets (SuperFed and friends)."""
__version__ = "0.1.0"
