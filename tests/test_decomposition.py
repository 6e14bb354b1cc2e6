"""The loss decomposition against closed-form answers and its defining properties."""
import math

import pytest
import torch

from equibench.decomposition import combine, loss_decomposition
from equibench.rotations import cube_rotations, random_rotations


def _twisted_linear(a: torch.Tensor, points: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """f(p) = A p twisted by each rotation: R^T A R p, [K, E, 3]."""
    maps = rotations.transpose(1, 2) @ a @ rotations  # [K, 3, 3]
    return torch.einsum("kij,ej->kei", maps, points)


def _closed_form_equiv(a: torch.Tensor, points: torch.Tensor) -> float:
    """L_equiv = ||A - (tr A / 3) I||_F^2 · E||p||^2 / 3 for f(p) = A p and squared error."""
    traceless = a - torch.trace(a) / 3 * torch.eye(3, dtype=a.dtype)
    return float(traceless.pow(2).sum() * points.pow(2).sum(1).mean() / 3)


@pytest.fixture
def linear_problem():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    points = torch.randn(4000, 3, dtype=torch.float64, generator=gen)
    target = torch.randn(4000, 3, dtype=torch.float64, generator=gen)
    return a, points, target, gen


def _twisted_per_example(a: torch.Tensor, points: torch.Tensor, k: int, gen) -> torch.Tensor:
    """Like _twisted_linear with K independent rotations for every example, [K, E, 3]."""
    rotations = random_rotations(k * len(points), gen, dtype=torch.float64).reshape(len(points), k, 3, 3)
    return torch.einsum("ekij,ej->kei", rotations.transpose(2, 3) @ a @ rotations, points)


@pytest.mark.parametrize("k", [2, 3, 8])
def test_unbiased_at_small_k(linear_problem, k):
    a, points, target, gen = linear_problem
    twisted = _twisted_per_example(a, points, k, gen)
    d = loss_decomposition(twisted, target)
    expected = _closed_form_equiv(a, points)
    se = d.stderr()["equiv"]
    assert abs(d.equiv - expected) < 4 * se, (d.equiv, expected, se)
    # the plug-in variance (no K/(K-1)) is off by the factor (K-1)/K, which this test detects
    biased = d.equiv * (k - 1) / k
    assert abs(biased - expected) > 4 * se


def test_twirl_of_linear_map_is_trace_part(linear_problem):
    a, points, target, gen = linear_problem
    k = 64
    twisted = _twisted_per_example(a, points, k, gen)
    twirl_prediction = torch.trace(a) / 3 * points
    # the Monte Carlo mean of K twists misses the twirl by a mean squared error of L_equiv / K
    miss = float((twisted.mean(0) - twirl_prediction).pow(2).sum(1).mean())
    assert miss == pytest.approx(_closed_form_equiv(a, points) / k, rel=0.2)
    exact_twirl = float((twirl_prediction - target).pow(2).sum(1).mean())
    d = loss_decomposition(twisted, target)
    assert abs(d.twirl - exact_twirl) < 4 * d.stderr()["twirl"]
    assert abs(d.equiv - _closed_form_equiv(a, points)) < 4 * d.stderr()["equiv"]


def test_exact_for_finite_group():
    # For the cube group, f̄ is the exact group average: for f(p) = A p it is (tr A / 3) p too,
    # because the cube group's second moments match SO(3)'s (it is a unitary 2-design on R^3).
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    points = torch.randn(50, 3, dtype=torch.float64, generator=gen)
    target = torch.zeros_like(points)
    group = cube_rotations(dtype=torch.float64)
    twisted = _twisted_linear(a, points, group)
    d = loss_decomposition(twisted, target, exact=True)
    twirl_prediction = torch.trace(a) / 3 * points
    assert torch.allclose(twisted.mean(0), twirl_prediction, atol=1e-12)
    assert d.twirl == pytest.approx(float(twirl_prediction.pow(2).sum(1).mean()), rel=1e-12)


def test_equivariant_function_reads_zero_and_parts_add_up():
    gen = torch.Generator().manual_seed(2)
    points = torch.randn(64, 3, dtype=torch.float64, generator=gen)
    target = torch.randn(64, 3, dtype=torch.float64, generator=gen)
    twisted = _twisted_linear(2.5 * torch.eye(3, dtype=torch.float64), points,
                              random_rotations(16, gen, dtype=torch.float64))
    d = loss_decomposition(twisted, target)
    assert abs(d.equiv) < 1e-25 and d.relative < 1e-25
    assert d.total == pytest.approx(d.twirl + d.equiv, rel=1e-15)


def test_equiv_nonnegative_for_l1_and_mse():
    gen = torch.Generator().manual_seed(3)
    twisted = torch.randn(5, 40, 3, generator=gen, dtype=torch.float64)
    target = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    for loss in ("mse", "l1"):
        d = loss_decomposition(twisted, target, loss=loss)
        assert (d.equiv_per_example >= -1e-12).all()
        assert d.total == pytest.approx(d.twirl + d.equiv)
        assert 0 < d.relative <= 1


def test_l1_plugin_matches_definition():
    twisted = torch.tensor([[[1.0]], [[3.0]]], dtype=torch.float64)  # K=2, one example, f = 1 and 3
    target = torch.tensor([[0.0]], dtype=torch.float64)
    d = loss_decomposition(twisted, target, loss="l1")
    assert d.total == pytest.approx(2.0) and d.twirl == pytest.approx(2.0) and d.equiv == pytest.approx(0.0)
    d = loss_decomposition(twisted, torch.tensor([[2.0]], dtype=torch.float64), loss="l1")
    assert d.total == pytest.approx(1.0) and d.twirl == pytest.approx(0.0) and d.equiv == pytest.approx(1.0)


def test_example_index_averages_rows_within_examples():
    twisted = torch.tensor([[[0.0], [2.0], [4.0]], [[2.0], [2.0], [0.0]]], dtype=torch.float64)
    target = torch.zeros(3, 1, dtype=torch.float64)
    d = loss_decomposition(twisted, target, example_index=torch.tensor([0, 0, 1]))
    # rows: total = (0+4)/2=2, (4+4)/2=4, (16+0)/2=8; example 0 = mean(2, 4) = 3, example 1 = 8
    assert d.total_per_example.tolist() == [3.0, 8.0]


def test_combine_is_weighted_sum():
    gen = torch.Generator().manual_seed(4)
    d1 = loss_decomposition(torch.randn(4, 10, generator=gen), torch.randn(10, generator=gen))
    d2 = loss_decomposition(torch.randn(4, 10, 3, generator=gen), torch.randn(10, 3, generator=gen))
    c = combine({"a": (2.0, d1), "b": (0.5, d2)})
    assert c.total == pytest.approx(2 * d1.total + 0.5 * d2.total)
    assert c.equiv == pytest.approx(2 * d1.equiv + 0.5 * d2.equiv)
    with pytest.raises(ValueError, match="examples"):
        combine({"a": (1.0, d1), "c": (1.0, loss_decomposition(torch.randn(4, 3), torch.randn(3)))})


def test_stderr_shrinks_with_examples():
    gen = torch.Generator().manual_seed(5)
    small = loss_decomposition(torch.randn(4, 100, generator=gen), torch.zeros(100))
    large = loss_decomposition(torch.randn(4, 10000, generator=gen), torch.zeros(10000))
    assert large.stderr()["equiv"] < small.stderr()["equiv"] / 5
    assert math.isfinite(large.stderr()["relative"])


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="K=2"):
        loss_decomposition(torch.zeros(1, 5), torch.zeros(5))
    with pytest.raises(ValueError, match=r"\[K, \[5\]\]"):
        loss_decomposition(torch.zeros(3, 4), torch.zeros(5))
    with pytest.raises(ValueError, match="unknown loss"):
        loss_decomposition(torch.zeros(3, 5), torch.zeros(5), loss="huber")
