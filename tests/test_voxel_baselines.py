"""The voxel baselines: shapes, cards, and exact cube equivariance where it is claimed."""
import types

import pytest
import torch
from e3nn import o3
from e3nn.nn import Gate
from e3nn.nn.models.v2104.voxel_convolution import Convolution

from equibench.probe import probe_equivariance
from equibench.rotations import cube_rotations, rotate_grid
from equibench.task import Example, OutputSpec, VoxelGeometry
from equibench_baselines import voxel_cnn, voxel_e3nn
from equibench_baselines.voxel_e3nn.model import FusedConvolution, VoxelGate

D = 8
GRID = OutputSpec("grid", "grid", "grid", (5, D, D, D))


def fake_task(size: int = D):
    grid = OutputSpec("grid", "grid", "grid", (5, size, size, size))
    return types.SimpleNamespace(name="voxel_test", outputs=(grid,))


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def example(dtype, n: int = 2) -> Example:
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(n, 5, D, D, D, generator=generator, dtype=torch.float64)
    noisy = clean + 0.5 * torch.randn(n, 5, D, D, D, generator=generator, dtype=torch.float64)
    return Example(noisy.to(dtype), {"grid": clean.to(dtype)}, n)


def probe(model, dtype, n: int = 2):
    group = cube_rotations(dtype=dtype)
    with torch.no_grad():
        return probe_equivariance(lambda grid: {"grid": model(grid)}, VoxelGeometry(), example(dtype, n), (GRID,),
                                  group, exact=True)


def e3nn_model():
    """The e3nn baseline with a random (not zero-initialised) output layer, so that its output is not 0."""
    model = voxel_e3nn.build_model(fake_task())
    with torch.no_grad():
        for parameter in model.out.parameters():
            parameter.normal_()
    assert model(example(torch.get_default_dtype()).inputs).abs().mean() > 1e-2
    return model


class CubeSymmetrised(torch.nn.Module):
    """``mean_R R⁻¹ f(R x)`` over the 24 cube rotations: exactly cube-equivariant for any ``f``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, grid):
        group = cube_rotations(dtype=grid.dtype)
        outputs = self.model(torch.cat([rotate_grid(grid, r) for r in group])).chunk(len(group))
        return torch.stack([rotate_grid(out, r.T) for out, r in zip(outputs, group)]).mean(0)


@pytest.mark.parametrize("package", [voxel_cnn, voxel_e3nn])
def test_build_model_reads_the_grid_and_card(package):
    torch.manual_seed(0)
    model = package.build_model(fake_task())
    assert model(torch.randn(2, 5, D, D, D)).shape == (2, 5, D, D, D)
    assert model.equivariant is (package is voxel_e3nn) and isinstance(model.card, dict) and model.card
    assert package.__doc__.splitlines()[0]


def test_cnn_size_and_grid_check():
    model = voxel_cnn.build_model(fake_task(16))
    assert 50_000 <= sum(p.numel() for p in model.parameters()) <= 200_000
    with pytest.raises(ValueError, match="divisible by"):
        voxel_cnn.build_model(fake_task(6))
    with pytest.raises(ValueError, match="one grid output"):
        voxel_cnn.build_model(types.SimpleNamespace(name="md17", outputs=(OutputSpec("energy", "scalar", "graph"),)))


def test_e3nn_model_reads_zero_on_the_cube_group_in_float64(float64):
    torch.manual_seed(0)
    result = probe(e3nn_model(), torch.float64)
    assert result.combined.total > 1.0
    assert result.combined.relative < 1e-25 and result.deviation["grid"] < 1e-13


def test_e3nn_model_floor_in_float32():
    torch.manual_seed(0)
    result = probe(e3nn_model(), torch.float32)
    assert result.combined.relative < 1e-10 and result.deviation["grid"] < 1e-5


def test_untrained_cnn_is_not_equivariant_and_its_cube_twirl_is(float64):
    torch.manual_seed(0)
    cnn = voxel_cnn.build_model(fake_task())
    plain = probe(cnn, torch.float64)
    assert plain.combined.relative > 1e-4 and plain.deviation["grid"] > 0.1  # vs a floor near 1e-30
    symmetrised = probe(CubeSymmetrised(voxel_cnn.build_model(fake_task(), width=4)), torch.float64, n=1)
    assert symmetrised.combined.relative < 1e-25 and symmetrised.deviation["grid"] < 1e-13


def test_fused_convolution_and_gate_match_e3nn(float64):
    torch.manual_seed(0)
    sh = o3.Irreps.spherical_harmonics(2)
    fused = FusedConvolution("5x0e + 2x1o", "4x0e + 3x0e + 3x1o", sh, 3.9, 4)
    x = torch.randn(2, 11, 6, 6, 6)
    assert torch.allclose(fused(x), Convolution.forward(fused, x), atol=1e-12)
    gate = VoxelGate(4, 3)
    reference = Gate("4x0e", [torch.nn.functional.silu], "3x0e", [torch.sigmoid], "3x1o")
    y = torch.randn(2, gate.irreps_in.dim, 5, 5, 5)
    assert torch.allclose(gate(y), reference(y.movedim(1, -1)).movedim(-1, 1), atol=1e-12)
