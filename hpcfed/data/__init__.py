"""Federated data: loading, normalising and partitioning data sets over clients.

The public entry point is :func:`load_federated_data`, which returns a :class:`FederatedData`
holding the server's test set and each client's training samples (``client_data(k)``).
"""

from hpcfed.data.datasets import FederatedData, GeneratedData, StoredData, load_federated_data

__all__ = ["FederatedData", "GeneratedData", "StoredData", "load_federated_data"]
