"""Rotations: Haar uniformity, the cube group, and actions that compose correctly."""
import math

import pytest
import torch

from equibench.rotations import (cube_rotations, inverse, random_rotations, rotate, rotate_grid,
                                 rotate_vectors, rotation_angles)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_rotations_are_proper_rotations(dtype):
    r = random_rotations(500, torch.Generator().manual_seed(0), dtype=dtype)
    eye = torch.eye(3, dtype=dtype).expand(500, 3, 3)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert r.dtype == dtype
    assert torch.allclose(r.transpose(1, 2) @ r, eye, atol=tol)
    assert torch.allclose(torch.linalg.det(r), torch.ones(500, dtype=dtype), atol=tol)


def test_same_seed_same_rotations_and_dtype_independent():
    a = random_rotations(8, torch.Generator().manual_seed(3), dtype=torch.float32)
    b = random_rotations(8, torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(a.double(), b, atol=1e-7)
    assert not torch.allclose(a, random_rotations(8, torch.Generator().manual_seed(4)))


def test_haar_moments_of_rotated_unit_vector():
    # R e_z is uniform on the sphere: E[u] = 0, E[u u^T] = I/3.
    n = 200_000
    u = random_rotations(n, torch.Generator().manual_seed(1), dtype=torch.float64)[:, :, 2]
    se = 1 / math.sqrt(n)
    assert u.mean(0).abs().max() < 5 * se
    second = (u.unsqueeze(2) * u.unsqueeze(1)).mean(0)
    assert torch.allclose(second, torch.eye(3, dtype=torch.float64) / 3, atol=5 * se)


def test_haar_rotation_angle_distribution():
    # Under the Haar measure the angle θ has density (1 - cos θ)/π on [0, π]:
    # P(θ <= a) = (a - sin a)/π. Compare the empirical CDF at several points.
    n = 100_000
    theta = rotation_angles(random_rotations(n, torch.Generator().manual_seed(2), dtype=torch.float64))
    for a in (0.5, 1.0, math.pi / 2, 2.0, 2.8):
        expected = (a - math.sin(a)) / math.pi
        assert abs(float((theta <= a).double().mean()) - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_non_haar_sampler_would_fail_the_angle_test():
    # Uniform Euler angles are NOT Haar: the angle test must be able to tell.
    n = 100_000
    g = torch.Generator().manual_seed(0)
    angles = torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 * math.pi
    rz = lambda a: torch.stack([torch.stack([a.cos(), -a.sin(), 0 * a], -1),
                                torch.stack([a.sin(), a.cos(), 0 * a], -1),
                                torch.stack([0 * a, 0 * a, 1 + 0 * a], -1)], -2)
    rx = lambda a: torch.stack([torch.stack([1 + 0 * a, 0 * a, 0 * a], -1),
                                torch.stack([0 * a, a.cos(), -a.sin()], -1),
                                torch.stack([0 * a, a.sin(), a.cos()], -1)], -2)
    r = rz(angles[:, 0]) @ rx(angles[:, 1]) @ rz(angles[:, 2])
    theta = rotation_angles(r)
    a = 1.0
    expected = (a - math.sin(a)) / math.pi
    assert abs(float((theta <= a).double().mean()) - expected) > 4 * math.sqrt(expected * (1 - expected) / n)


def test_cube_rotations_form_a_group():
    g = cube_rotations(dtype=torch.float64)
    assert g.shape == (24, 3, 3)
    assert torch.equal(g[0], torch.eye(3, dtype=torch.float64))
    keys = {tuple(m.flatten().tolist()) for m in g}
    assert len(keys) == 24
    for a in g:
        assert tuple(inverse(a).flatten().tolist()) in keys
        for b in g:
            assert tuple((a @ b).flatten().tolist()) in keys
    assert torch.allclose(torch.linalg.det(g), torch.ones(24, dtype=torch.float64))


def test_vector_action_composes():
    gen = torch.Generator().manual_seed(5)
    r1, r2 = random_rotations(2, gen, dtype=torch.float64)
    v = torch.randn(10, 3, dtype=torch.float64, generator=gen)
    assert torch.allclose(rotate_vectors(rotate_vectors(v, r2), r1), rotate_vectors(v, r1 @ r2))
    assert torch.allclose(rotate_vectors(rotate_vectors(v, r1), inverse(r1)), v)
    assert torch.allclose(rotate_vectors(v, r1), (r1 @ v.T).T)


def test_vector_action_per_row_index():
    gen = torch.Generator().manual_seed(6)
    rs = random_rotations(3, gen, dtype=torch.float64)
    v = torch.randn(7, 3, dtype=torch.float64, generator=gen)
    index = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    out = rotate_vectors(v, rs, index)
    for i in range(7):
        assert torch.allclose(out[i], rs[index[i]] @ v[i])


def _render(points: torch.Tensor, size: int = 9, spacing: float = 0.5, width: float = 0.6) -> torch.Tensor:
    """Gaussian density of points on a centred cubic grid, [1, 1, D, D, D] (x, y, z axes)."""
    axis = (torch.arange(size, dtype=torch.float64) - (size - 1) / 2) * spacing
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)  # [D, D, D, 3]
    d2 = ((grid.unsqueeze(-2) - points) ** 2).sum(-1)  # [D, D, D, P]
    return torch.exp(-d2 / (2 * width**2)).sum(-1)[None, None]


def test_grid_action_matches_rotating_the_points():
    points = torch.tensor([[0.9, 0.2, -0.4], [-0.6, 1.1, 0.3], [0.1, -0.7, 0.8]], dtype=torch.float64)
    for r in cube_rotations(dtype=torch.float64):
        assert torch.allclose(rotate_grid(_render(points), r), _render(rotate_vectors(points, r)), atol=1e-12)


def test_grid_action_composes_and_inverts():
    g = cube_rotations(dtype=torch.float64)
    grid = torch.randn(2, 3, 5, 5, 5, dtype=torch.float64)
    for a in g[::5]:
        assert torch.equal(rotate_grid(rotate_grid(grid, a), inverse(a)), grid)
        for b in g[::7]:
            assert torch.equal(rotate_grid(rotate_grid(grid, b), a), rotate_grid(grid, a @ b))


def test_grid_action_refuses_non_cube_rotation():
    r = random_rotations(1, torch.Generator().manual_seed(0))[0]
    with pytest.raises(ValueError, match="cube rotations"):
        rotate_grid(torch.zeros(1, 1, 4, 4, 4), r)


def test_rotate_dispatch_and_unknown_kind():
    r = cube_rotations()[3]
    s = torch.randn(4)
    assert torch.equal(rotate(s, r, "scalar"), s)
    with pytest.raises(ValueError, match="unknown kind"):
        rotate(s, r, "tensor")
