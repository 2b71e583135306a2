"""Federated data: loading, normalising and partitioning data sets over clients.

The public entry point is :func:`load_federated_data`, which returns a :class:`FederatedData`
holding the server's train/test tensors and a CSR partition of the training samples over clients.
"""

from hpcfed.data.datasets import FederatedData, load_federated_data

__all__ = ["FederatedData", "load_federated_data"]
