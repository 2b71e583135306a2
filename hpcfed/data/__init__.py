"""Federated data: loading, normalising and partitioning data sets over clients.

The public entry point is :func:`load_federated_data`, which returns a :class:`FederatedData`
holding the server's test set (``x_test``, ``y_test``) and validation set (``x_val``, ``y_val``) and
each client's training (``client_data(k)``) and validation samples (``client_validation(k)``).
The test set only reports; the validation splits (hpcfed.data.splits) are what a method may decide
with.
"""

from hpcfed.data.federated import FederatedData, GeneratedData, StoredData
from hpcfed.data.load import load_federated_data

__all__ = ["FederatedData", "GeneratedData", "StoredData", "load_federated_data"]
