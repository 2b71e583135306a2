"""Tests of hpcfed.round.aggregate: the one masked aggregation rule in fixed point, and MaxNet's beta.

Hand-computed cases in the style of Flower's aggregate_test.py: the expected numbers are
written out with their arithmetic.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from hpcfed.round.aggregate import FRACTION_BITS, SCALE, accumulate, divide_keep, from_fixed, masked_average, to_fixed


def fresh(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(p, dtype=torch.int64), torch.zeros(p, dtype=torch.int64)


def test_fixed_point_round_trip():
    values = torch.tensor([0.0, 1.0, -2.5, 1.0 / 3.0, 1e-3], dtype=torch.float64)
    fixed = to_fixed(values)
    assert fixed.dtype == torch.int64
    assert fixed[1].item() == 2 ** FRACTION_BITS and fixed[2].item() == -5 * 2 ** (FRACTION_BITS - 1)
    assert torch.allclose(from_fixed(fixed), values, rtol=0, atol=0.5 / SCALE)


def test_masked_aggregation_by_hand():
    """Client A covers elements 0..2 with weight 1, client B elements 1..3 with weight 2; nobody covers 4.

    element 0: A only            -> 0.1
    element 1: (1*0.2 + 2*0.4)/3 -> 1.0/3
    element 2: (1*0.3 + 2*0.5)/3 -> 1.3/3
    element 3: B only            -> 0.6
    element 4: nobody            -> keeps its old value 50
    """
    old = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
    acc_sum, acc_weight = fresh(5)
    accumulate(acc_sum, acc_weight, torch.tensor([0, 1, 2]), torch.tensor([0.1, 0.2, 0.3]), 1.0)
    accumulate(acc_sum, acc_weight, torch.tensor([1, 2, 3]), torch.tensor([0.4, 0.5, 0.6]), 2.0)
    assert acc_weight.tolist() == [1 * 2 ** 40, 3 * 2 ** 40, 3 * 2 ** 40, 2 * 2 ** 40, 0]
    new = divide_keep(acc_sum, acc_weight, old)
    expected = [0.1, 1.0 / 3.0, 1.3 / 3.0, 0.6, 50.0]
    assert new.dtype == torch.float32
    np.testing.assert_allclose(new.numpy(), expected, rtol=0, atol=1e-6)
    # The same through the dense float64 reference form.
    thetas = [np.array([0.1, 0.2, 0.3, 0.0, 0.0]), np.array([0.0, 0.4, 0.5, 0.6, 0.0])]
    masks = [np.array([1, 1, 1, 0, 0.0]), np.array([0, 1, 1, 1, 0.0])]
    ref = masked_average(thetas, masks, [1.0, 2.0], old.numpy().astype(np.float64))
    np.testing.assert_allclose(ref, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new.numpy(), ref, rtol=0, atol=1e-6)
    assert old.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]   # divide_keep does not modify old


def test_masked_aggregation_with_fractional_weights_by_hand():
    """Weights 0.25 and 0.75 on one shared element: 0.25*4 + 0.75*(-8) = -5; element 1 only by the first."""
    acc_sum, acc_weight = fresh(3)
    accumulate(acc_sum, acc_weight, torch.tensor([0, 1]), torch.tensor([4.0, 7.0]), 0.25)
    accumulate(acc_sum, acc_weight, torch.tensor([0]), torch.tensor([-8.0]), 0.75)
    new = divide_keep(acc_sum, acc_weight, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert new.tolist() == [-5.0, 7.0, 3.0]          # exact: all numbers are dyadic


def test_fedavg_with_full_masks_is_the_weighted_average():
    rng = np.random.default_rng(0)
    p, k = 200, 4
    thetas = rng.normal(size=(k, p)).astype(np.float32)
    weights = rng.uniform(0.1, 3.0, size=k)
    acc_sum, acc_weight = fresh(p)
    for theta, w in zip(thetas, weights):
        accumulate(acc_sum, acc_weight, torch.arange(p), torch.from_numpy(theta), float(w))
    new = divide_keep(acc_sum, acc_weight, torch.zeros(p, dtype=torch.float64))
    expected = np.average(thetas.astype(np.float64), axis=0, weights=weights)
    np.testing.assert_allclose(new.numpy(), expected, rtol=0, atol=1e-9)
    ref = masked_average(list(thetas.astype(np.float64)), [np.ones(p)] * k, list(weights), np.zeros(p))
    np.testing.assert_allclose(ref, expected, rtol=0, atol=1e-12)


def random_clients(seed: int, p: int = 300, k: int = 5):
    rng = np.random.default_rng(seed)
    clients = []
    for _ in range(k):
        size = int(rng.integers(p // 4, p - 20))
        index = torch.from_numpy(rng.choice(p - 20, size=size, replace=False))   # the last 20: nobody
        theta = torch.from_numpy(rng.normal(scale=3.0, size=size).astype(np.float32))
        clients.append((index, theta, float(rng.uniform(0.01, 1.0))))
    return clients


def run(clients, order, p: int = 300):
    acc_sum, acc_weight = fresh(p)
    for i in order:
        accumulate(acc_sum, acc_weight, *clients[i])
    return acc_sum, acc_weight


def test_order_invariance_is_bit_identical():
    clients = random_clients(1)
    ref_sum, ref_weight = run(clients, range(5))
    old = torch.arange(300, dtype=torch.float32)
    ref_new = divide_keep(ref_sum, ref_weight, old)
    for order in itertools.permutations(range(5)):
        s, w = run(clients, order)
        assert torch.equal(s, ref_sum) and torch.equal(w, ref_weight), order
        assert torch.equal(divide_keep(s, w, old), ref_new)
    # Split over two "ranks", each accumulating its own clients, then summed (the MPI reduction).
    for split in ([0, 2, 4], [1], [3, 4], [0, 1, 2, 3]):
        rest = [i for i in range(5) if i not in split]
        s1, w1 = run(clients, split)
        s2, w2 = run(clients, reversed(rest))
        assert torch.equal(s1 + s2, ref_sum) and torch.equal(w1 + w2, ref_weight)
        assert torch.equal(divide_keep(s2 + s1, w2 + w1, old), ref_new)


def test_order_invariance_result_matches_reference_and_keeps_uncovered():
    clients = random_clients(2)
    s, w = run(clients, range(5))
    old = np.linspace(-1, 1, 300)
    new = divide_keep(s, w, torch.from_numpy(old)).numpy()
    thetas, masks = [], []
    for index, theta, _ in clients:
        t, m = np.zeros(300), np.zeros(300)
        t[index.numpy()], m[index.numpy()] = theta.numpy(), 1.0
        thetas.append(t)
        masks.append(m)
    ref = masked_average(thetas, masks, [c[2] for c in clients], old)
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-9)
    uncovered = sum(masks) == 0
    assert uncovered.any()                       # the case exists in this draw
    assert np.array_equal(new[uncovered], old[uncovered])
