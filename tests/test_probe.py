"""The batched probe: one forward pass, the same numbers as a loop over rotations, ~0 for
equivariant functions and clearly > 0 for non-equivariant ones."""
import pytest
import torch
from torch_geometric.data import Batch

from equibench.decomposition import loss_decomposition
from equibench.probe import probe_equivariance, probe_rotations, relative_deviation
from equibench.rotations import cube_rotations, random_rotations, rotate_grid
from equibench.task import Example, OutputSpec, PointCloudGeometry, ProbeSettings, VoxelGeometry

FORCES = OutputSpec("forces", "vector", "node", (3,))
ENERGY = OutputSpec("energy", "scalar", "graph", (), loss_weight=0.5)


def molecules(sizes, seed=0, dtype=torch.float64) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.tensor(sizes).cumsum(0)])
    return Batch(pos=torch.randn(n, 3, generator=gen, dtype=dtype), x=torch.randn(n, 4, generator=gen, dtype=dtype),
                 t=torch.rand(len(sizes), generator=gen, dtype=dtype), batch=batch, ptr=ptr)


class PairForces(torch.nn.Module):
    """An exactly equivariant analytic model: F_i = Σ_j (x_i - x_j) exp(-|x_i - x_j|^2) w(x_j),
    E = Σ_ij exp(-|x_i - x_j|^2) per molecule."""

    def forward(self, batch):
        diff = batch.pos[:, None] - batch.pos[None]
        same = (batch.batch[:, None] == batch.batch[None]).to(diff.dtype)
        kernel = torch.exp(-diff.pow(2).sum(-1)) * same
        forces = (diff * (kernel * batch.x[None, :, 0])[..., None]).sum(1)
        energy = torch.zeros(int(batch.batch.max()) + 1, dtype=diff.dtype).index_add(0, batch.batch, kernel.sum(1))
        return {"forces": forces, "energy": energy * batch.t}


class LinearForces(torch.nn.Module):
    """f(p) = A p per atom: not equivariant unless A ∝ I; counts its calls."""

    def __init__(self, a):
        super().__init__()
        self.a, self.calls = a, 0

    def forward(self, batch):
        self.calls += 1
        return {"forces": batch.pos @ self.a.T}


def _example(batch, outputs, seed=1):
    gen = torch.Generator().manual_seed(seed)
    targets = {}
    for spec in outputs:
        rows = batch.num_nodes if spec.level == "node" else batch.num_graphs
        targets[spec.name] = torch.randn(rows, *spec.feature_shape, generator=gen, dtype=torch.float64)
    return Example(batch, targets, batch.num_graphs)


def test_equivariant_model_reads_zero_in_float64():
    batch = molecules([3, 5, 4, 6])
    geometry = PointCloudGeometry(graph_fields=("t",))
    rotations = random_rotations(12, torch.Generator().manual_seed(0), dtype=torch.float64)
    result = probe_equivariance(PairForces(), geometry, _example(batch, (FORCES, ENERGY)), (FORCES, ENERGY), rotations)
    assert result.combined.total > 0.1
    assert result.combined.relative < 1e-20
    for name in ("forces", "energy"):
        assert result.per_output[name].relative < 1e-20
        assert result.deviation[name] < 1e-12


def test_batched_probe_equals_loop_over_rotations():
    batch = molecules([3, 5, 4])
    a = torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model = LinearForces(a)
    example = _example(batch, (FORCES,))
    rotations = random_rotations(6, torch.Generator().manual_seed(3), dtype=torch.float64)
    result = probe_equivariance(model, PointCloudGeometry(), example, (FORCES,), rotations)
    assert model.calls == 1  # K rotations in ONE forward pass
    loop = torch.stack([model(Batch(pos=batch.pos @ r.T, batch=batch.batch))["forces"] @ r for r in rotations])
    reference = loss_decomposition(loop, example.targets["forces"], example_index=batch.batch, n_examples=3)
    assert result.per_output["forces"].total == pytest.approx(reference.total, rel=1e-12)
    assert result.per_output["forces"].equiv == pytest.approx(reference.equiv, rel=1e-12)
    assert result.per_output["forces"].relative > 0.01
    plain = model(batch)["forces"]
    deviation = relative_deviation(loop, plain, batch.batch, 3)
    assert result.deviation["forces"] == pytest.approx(deviation, rel=1e-12)


def test_relative_deviation_closed_form():
    # f(p) = diag(2, 1, 1) p, one example p = e_x, R = 90° about z.
    f = torch.diag(torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64))
    p = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    r = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    twisted = ((r.T @ f @ r) @ p.T).T.unsqueeze(0)  # R^T f(R p) = R^T f e_y = R^T e_y = e_x
    plain = (f @ p.T).T  # 2 e_x
    assert relative_deviation(twisted, plain, None, 1) == pytest.approx(0.5)  # |e_x - 2 e_x| / |2 e_x|


def test_untrained_mlp_is_far_from_equivariant():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3)).double()
    batch = molecules([4, 4])
    model = lambda b: {"forces": mlp(b.pos)}
    rotations = random_rotations(16, torch.Generator().manual_seed(1), dtype=torch.float64)
    result = probe_equivariance(model, PointCloudGeometry(), _example(batch, (FORCES,)), (FORCES,), rotations)
    assert result.combined.relative > 1e-3
    assert result.deviation["forces"] > 0.05


GRID = OutputSpec("grid", "grid", "grid", (2, 6, 6, 6))


def _grid_example(seed=0):
    gen = torch.Generator().manual_seed(seed)
    grids = torch.randn(3, 2, 6, 6, 6, generator=gen, dtype=torch.float64)
    return Example(grids, {"grid": grids + 0.1 * torch.randn(grids.shape, generator=gen, dtype=torch.float64)}, 3)


def test_voxel_probe_exact_zero_for_cube_symmetrised_cnn():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 2, 3, padding=1).double()
    group = cube_rotations(dtype=torch.float64)
    symmetrised = lambda g: torch.stack([rotate_grid(conv(rotate_grid(g, r)), r.T) for r in group]).mean(0)
    example = _grid_example()
    plain = probe_equivariance(lambda g: {"grid": conv(g)}, VoxelGeometry(), example, (GRID,), group, exact=True)
    sym = probe_equivariance(lambda g: {"grid": symmetrised(g)}, VoxelGeometry(), example, (GRID,), group, exact=True)
    assert plain.combined.relative > 1e-3
    assert sym.combined.relative < 1e-25
    assert sym.combined.exact and sym.combined.k == 24


def test_probe_rotations_settings():
    rot, exact = probe_rotations(ProbeSettings(k=5, seed=3))
    again, _ = probe_rotations(ProbeSettings(k=5, seed=3))
    assert rot.shape == (5, 3, 3) and not exact and torch.equal(rot, again)
    cube, exact = probe_rotations(ProbeSettings(group="cube"))
    assert cube.shape == (24, 3, 3) and exact


def test_missing_output_is_named():
    batch = molecules([3])
    with pytest.raises(KeyError, match="energy"):
        probe_equivariance(lambda b: {"forces": b.pos}, PointCloudGeometry(), _example(batch, (FORCES, ENERGY)),
                           (FORCES, ENERGY), cube_rotations(dtype=torch.float64)[:3])


def test_twirled_model_is_exactly_cube_equivariant_and_averages():
    from equibench.probe import Twirled

    torch.manual_seed(1)
    conv = torch.nn.Conv3d(2, 2, 3, padding=1).double()
    group = cube_rotations(dtype=torch.float64)
    twirled = Twirled(lambda g: {"grid": conv(g)}, VoxelGeometry(), (GRID,), group)
    example = _grid_example()
    result = probe_equivariance(twirled, VoxelGeometry(), example, (GRID,), group, exact=True)
    assert result.combined.relative < 1e-25
    manual = torch.stack([rotate_grid(conv(rotate_grid(example.inputs, r)), r.T) for r in group]).mean(0)
    assert torch.allclose(twirled(example.inputs)["grid"], manual, atol=1e-12)
