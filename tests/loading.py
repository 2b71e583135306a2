"""Loading data sets in tests by the loader's arguments (hpcfed.data.load_federated_data takes the job's
``data`` section; tests name a few keys and the population)."""
from __future__ import annotations

from hpcfed.config import DataConfig
from hpcfed.data import FederatedData, load_federated_data
from hpcfed.data.deformed import DeformedOptions


def load_data(name: str, path=None, partition: str = "iid", alpha: float = 0.5, shards_per_client: int = 2,
              num_clients: int = 10, test_fraction: float = 0.2, seed: int = 0,
              deformed: DeformedOptions | None = None, **data_keys) -> FederatedData:
    """``load_federated_data`` of a ``data`` section with these keys (``deformed``: deformed_digits' options,
    as the section's ``image_size``, ``deformed_per_digit``, ... keys)."""
    if deformed is not None:
        data_keys.update(image_size=deformed.image_size, deformed_per_digit=deformed.per_digit,
                         deformed_test=deformed.test_samples, styles=deformed.styles,
                         deform_strength=deformed.strength)
    section = DataConfig(name=name, path=path or "", partition=partition, alpha=alpha,
                         shards_per_client=shards_per_client, test_fraction=test_fraction, **data_keys)
    return load_federated_data(section, num_clients, seed)
