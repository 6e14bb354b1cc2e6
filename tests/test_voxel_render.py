"""The voxel renderer: values in closed form and exact agreement with rotate_grid on the cube group."""
import math

import pytest
import torch

from equibench.rotations import cube_rotations, rotate_grid
from equibench_tasks.voxel_denoise.render import GridSpec, element_channels, render


def _molecules(dtype=torch.float32):
    """Three molecules (5, 3 and 1 atoms) of all five elements, within ±2.5 Å of the origin."""
    generator = torch.Generator().manual_seed(0)
    z = torch.tensor([6, 1, 1, 8, 9, 7, 1, 6, 1])
    pos = (torch.rand(9, 3, generator=generator, dtype=torch.float64) * 5 - 2.5).to(dtype)
    batch = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2])
    return z, pos, batch


def test_grid_points_are_symmetric_about_the_centre():
    grid = GridSpec(size=6, spacing=0.5)
    points = grid.points(torch.float64)
    assert torch.equal(points, torch.tensor([-1.25, -0.75, -0.25, 0.25, 0.75, 1.25], dtype=torch.float64))
    assert grid.half_width == 1.25 and grid.shape == (5, 6, 6, 6)


def test_density_matches_the_sum_of_gaussians():
    grid = GridSpec(size=7, spacing=0.4, sigma=0.6)
    z, pos, batch = _molecules(torch.float64)
    density = render(z, pos, batch, 3, grid)
    assert density.shape == (3, 5, 7, 7, 7) and density.dtype == torch.float64
    points = grid.points(torch.float64)
    xyz = torch.stack(torch.meshgrid(points, points, points, indexing="ij"), dim=-1)  # [D, D, D, 3]
    expected = torch.zeros_like(density)
    for atom in range(len(z)):  # brute force, one atom at a time
        value = torch.exp(-(xyz - pos[atom]).pow(2).sum(-1) / (2 * grid.sigma**2))
        expected[batch[atom], (1, 6, 7, 8, 9).index(int(z[atom]))] += value
    assert torch.allclose(density, expected, atol=1e-13)


def test_lone_atom_on_a_sample_point_peaks_at_one():
    grid = GridSpec(size=5, spacing=0.5, sigma=0.5)
    density = render(torch.tensor([8]), torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), 1, grid)
    assert density[0, 3, 2, 2, 2] == 1.0 and density[0, 3].max() == 1.0
    assert density[0, 3, 3, 2, 2].item() == pytest.approx(math.exp(-0.5))  # one σ away
    assert density[0, [0, 1, 2, 4]].abs().max() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [6, 7])
def test_rendering_rotated_coordinates_equals_rotating_the_grid(dtype, size):
    grid = GridSpec(size=size, spacing=0.5, sigma=0.5)
    z, pos, batch = _molecules(dtype)
    density = render(z, pos, batch, 3, grid)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14  # only the order of the 3-factor product differs
    for rotation in cube_rotations(dtype=dtype):
        rotated = render(z, pos @ rotation.T, batch, 3, grid)
        assert torch.allclose(rotated, rotate_grid(density, rotation), atol=tolerance, rtol=0)


def test_chunked_rendering_matches_one_pass():
    grid = GridSpec(size=6)
    z, pos, batch = _molecules()
    assert torch.allclose(render(z, pos, batch, 3, grid, max_atom_voxels=2 * 6**3), render(z, pos, batch, 3, grid))


def test_unknown_elements_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"atomic numbers \[17\]"):
        element_channels(torch.tensor([6, 17]))
    with pytest.raises(ValueError, match="need z"):
        render(torch.tensor([6]), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1)
