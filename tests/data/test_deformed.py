"""Tests of deformed_digits (hpcfed.data.deformed, hpcfed.data.deform)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hpcfed.assembly.job import load_job
from hpcfed.data.deform import deform, num_draws, upsample
from hpcfed.data.deformed import DeformedOptions, style_offsets
from hpcfed.data.digits import read_digits
from hpcfed.errors import ConfigError, DataError
from tests.loading import load_data

P = 3   # deformations per base digit in these tests


def load(num_clients=10, partition="iid", seed=0, options=None, **overrides):
    args = dict(alpha=0.5, shards_per_client=2, num_clients=num_clients, test_fraction=0.2, seed=seed)
    args.update(overrides)
    options = options or DeformedOptions(per_digit=P, test_samples=300)
    return load_data("deformed_digits", None, partition, deformed=options, **args)


def keyed(data, validation=False) -> dict[tuple[int, int], bytes]:
    """Every client's samples keyed by (base digit, copy)."""
    out = {}
    for k in range(data.num_clients):
        digits = data.client_digits(k, validation)
        x, _ = data.client_validation(k) if validation else data.client_data(k)
        for i, sample in enumerate(x):
            out[int(digits[i // P]), i % P] = sample.numpy().tobytes()
    return out


def test_shapes_ranges_and_sizes():
    data = load()
    assert data.name == "deformed_digits" and data.num_classes == 10 and data.input_shape == (1, 16, 16)
    assert data.x_test.shape == (300, 1, 16, 16) and data.x_test.dtype == torch.float32
    assert data.y_test.dtype == torch.int64 and set(data.y_test.tolist()) == set(range(10))
    x, y = data.client_data(0)
    assert x.shape == (data.samples_per_client()[0], 1, 16, 16) and len(y) == len(x)
    assert int(data.client_offsets[-1]) == P * len(data.generator.y_train)   # every base-train digit, P times
    pool = torch.cat([data.client_data(k)[0] for k in range(data.num_clients)])
    assert abs(float(pool.mean())) < 0.05 and abs(float(pool.std()) - 1) < 0.05   # normalised on training samples
    raw = data.generator.raw(False, np.arange(200), np.arange(200) % 5)
    assert raw.min() >= 0 and raw.max() <= 1 and raw.max() > 0.9
    big = load(options=DeformedOptions(image_size=32, per_digit=1, test_samples=10))
    assert big.input_shape == (1, 32, 32) and big.client_data(1)[0].shape[1:] == (1, 32, 32)


def test_deterministic_and_seed_dependent():
    first, again, other = load(), load(), load(seed=1)
    assert torch.equal(first.x_test, again.x_test) and torch.equal(first.y_test, again.y_test)
    for k in (0, 4, 9):
        assert all(torch.equal(a, b) for a, b in zip(first.client_data(k), again.client_data(k)))
    assert not torch.equal(first.x_test, other.x_test)
    assert not torch.equal(first.client_data(0)[0][:5], other.client_data(0)[0][:5])


def test_samples_do_not_depend_on_population_size_partition_or_call_order():
    small, large = load(num_clients=4), load(num_clients=37, partition="dirichlet")
    a, b = keyed(small), keyed(large)
    assert a.keys() == b.keys() and a == b    # the same (digit, copy) gives the same bits, whoever owns it
    fresh = load(num_clients=4)
    later = [fresh.client_data(k)[0] for k in (3, 1, 3, 0)]
    assert torch.equal(later[0], later[2]) and torch.equal(later[0], small.client_data(3)[0])
    assert torch.equal(later[3], small.client_data(0)[0])


def test_a_sample_does_not_depend_on_its_batch():
    g = load().generator
    digits, copies = np.arange(40) * 7, np.arange(40) % 4
    batch = g.raw(False, digits, copies)
    for i in (0, 17, 39):
        assert torch.equal(g.raw(False, digits[i:i + 1], copies[i:i + 1])[0], batch[i])
    more = load(options=DeformedOptions(per_digit=P + 2, test_samples=300))  # more copies keep the first ones
    assert torch.equal(more.generator.raw(False, digits, copies), batch)


def test_labels_follow_the_owned_base_digits():
    data = load(num_clients=10, partition="shards")
    for k in range(data.num_clients):
        _, y = data.client_data(k)
        digits = data.client_digits(k)
        assert torch.equal(y, data.generator.y_train[torch.from_numpy(np.repeat(digits, P))])
        assert len(set(y.tolist())) <= 4   # two shards of sorted labels, each straddling at most two
    owned = np.sort(np.concatenate([data.client_digits(k) for k in range(data.num_clients)]))
    assert np.array_equal(owned, np.arange(len(data.generator.y_train)))


def test_test_set_deforms_only_base_digits_no_client_sees():
    data = load(options=DeformedOptions(per_digit=P, test_samples=1000, strength=0.0))
    g = data.generator
    assert not set(g.train_rows) & set(g.test_rows)
    x_all, _ = read_digits()
    base_test = upsample(torch.from_numpy(x_all[g.test_rows]), 16)
    n = len(g.test_rows)
    clean = g.raw(True, np.arange(1000) % n, np.arange(1000) // n)
    assert torch.equal(clean, base_test[np.arange(1000) % n])   # strength 0: the upsampled base-test digits
    assert torch.equal(data.y_test, g.y_test[torch.from_numpy(np.arange(1000) % n)])
    seen = {r for k in range(data.num_clients) for r in g.train_rows[data.client_digits(k)]}
    assert not seen & set(g.test_rows) and seen == set(g.train_rows)


def test_client_validation_splits_base_digits():
    whole, split = load(), load(client_val_fraction=0.25)
    assert np.array_equal(split.samples_per_client() + split.validation_per_client(), np.diff(split.client_offsets))
    for k in range(split.num_clients):
        train, val = split.client_digits(k), split.client_digits(k, validation=True)
        owned = whole.client_digits(k)
        assert len(val) == int(0.25 * len(owned)) and not set(train) & set(val)
        assert sorted([*train, *val]) == sorted(owned)
        x, y = split.client_validation(k)
        assert len(y) == split.validation_per_client()[k] == P * len(val)
        assert len(split.client_data(k)[1]) == split.samples_per_client()[k]
    assert keyed(split, validation=True).items() <= keyed(whole).items()   # the same samples, held out


def test_server_validation_holds_base_digits_out_of_every_client():
    data = load(server_val_fraction=0.2)
    clients = {int(d) for k in range(data.num_clients) for d in data.client_digits(k)}
    assert len(data.y_val) == P * (len(data.generator.y_train) - len(clients)) > 0
    assert data.x_val.shape[1:] == (1, 16, 16) and set(data.y_val.tolist()) == set(range(10))
    assert load().x_val.shape == (0, 1, 16, 16)


def test_styles_shift_a_client_s_samples():
    rotation, thickness = style_offsets(3)
    assert rotation.tolist() == [-30.0, 0.0, 30.0] and thickness.tolist() == pytest.approx([0.0, 0.6, -0.6])
    plain = load(num_clients=6)
    styled = load(num_clients=6, options=DeformedOptions(per_digit=P, test_samples=300, styles=3))
    assert not torch.equal(plain.client_data(0)[0], styled.client_data(0)[0])
    assert torch.equal(plain.client_data(0)[1], styled.client_data(0)[1])
    g = styled.generator
    digits, copies = np.arange(5), np.zeros(5, dtype=np.int64)
    assert torch.equal(g.raw(False, digits, copies, np.full(5, 1)), g.raw(False, digits, copies, np.full(5, 4)))


def test_deform_is_vectorised_and_bounded():
    base = upsample(torch.full((4, 1, 8, 8), 16.0), 16)
    z = torch.randn(4, num_draws(16), generator=torch.Generator().manual_seed(0))
    x = deform(base, z, strength=2.0)
    assert x.shape == (4, 1, 16, 16) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(deform(base, z, strength=0.0), base)


@pytest.mark.parametrize("options,key", [
    (DeformedOptions(image_size=20), "data.image_size"),
    (DeformedOptions(per_digit=0), "data.deformed_per_digit"),
    (DeformedOptions(test_samples=-5), "data.deformed_test"),
    (DeformedOptions(styles=-1), "data.styles"),
    (DeformedOptions(strength=-1.0), "data.deform_strength"),
])
def test_bad_options_give_one_line_errors(options, key):
    with pytest.raises(DataError, match=key) as info:
        load(options=options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("override,key", [
    ("data.image_size=8", "data.image_size"), ("data.deformed_per_digit=-1", "data.deformed_per_digit"),
    ("data.deformed_test=0", "data.deformed_test"), ("data.styles=-2", "data.styles"),
    ("data.deform_strength=-0.5", "data.deform_strength"),
])
def test_bad_job_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_job(None, ["data.name=deformed_digits", override])


def test_bad_partition_and_path():
    with pytest.raises(DataError, match="data.partition"):
        load(partition="natural")
    with pytest.raises(DataError, match="data.path"):
        load_data("deformed_digits", "/tmp", "iid", 0.5, 2, 4, 0.2, 0)


def test_job_file_holds_the_calibration_protocol():
    job = load_job("jobs/deformed_digits.yaml")
    assert job.data.name == "deformed_digits" and job.data.partition == "dirichlet" and job.data.alpha == 100
    assert (job.clients.total, job.clients.per_round, job.devices.memory_mb) == (20, 8, (1000.0, 1000.0))
    assert (job.train.local_epochs, job.train.batch_size, job.train.lr, job.train.clip_norm) == (5, 16, 0.1, 10.0)
    assert job.strategy.name == "superfed"
