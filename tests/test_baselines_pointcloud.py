"""The point-cloud baselines: output contract, forces = -dE/dx, and the symmetries each one claims."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch_geometric.data import Batch, Data

from equibench.contract import check_outputs
from equibench.probe import probe_equivariance
from equibench.rotations import random_rotations
from equibench.task import Example, OutputSpec, PointCloudGeometry, Task, read_card
from equibench_baselines.common import radius_graph

BASELINES = ("nequip_e3nn", "egnn", "transformer")
EXACTLY_EQUIVARIANT = ("nequip_e3nn", "egnn")
FORCE_FIELD_OUTPUTS = (OutputSpec("energy", "scalar", "graph", ()), OutputSpec("forces", "vector", "node", (3,)))
FLOW_OUTPUTS = (OutputSpec("pos_velocity", "vector", "node", (3,)), OutputSpec("type_velocity", "scalar", "node", (5,)))


class FakeTask(Task):
    """Random molecules of 5-12 atoms with md17-like (energy, forces) or qm9_flow-like outputs."""

    name, version, description = "fake", "0", "random molecules"

    def __init__(self, flow: bool):
        super().__init__()
        self.outputs = FLOW_OUTPUTS if flow else FORCE_FIELD_OUTPUTS
        self.graph_fields = ("t",) if flow else ()
        self.node_feature_dim = 5 if flow else 4
        self.geometry = PointCloudGeometry(vector_fields=("pos",), graph_fields=self.graph_fields)

    def probe_example(self, n_molecules: int = 6, seed: int = 0) -> Example:
        generator = torch.Generator().manual_seed(seed)
        molecules = []
        for _ in range(n_molecules):
            n = int(torch.randint(5, 13, (), generator=generator))
            pos = 1.5 * torch.randn(n, 3, generator=generator)
            if self.graph_fields:
                extras = {"x": torch.randn(n, self.node_feature_dim, generator=generator),
                          "t": torch.rand(1, generator=generator)}
            else:
                types = torch.randint(0, self.node_feature_dim, (n,), generator=generator)
                extras = {"x": torch.nn.functional.one_hot(types, self.node_feature_dim).float()}
            molecules.append(Data(pos=pos - pos.mean(0), **extras))
        batch = Batch.from_data_list(molecules)
        targets = {s.name: torch.zeros(batch.num_nodes if s.level == "node" else n_molecules, *s.feature_shape)
                   for s in self.outputs}
        return Example(batch, targets, n_molecules)

    def split_indices(self):
        raise NotImplementedError

    def train_batch(self, batch_size, generator, augment):
        raise NotImplementedError

    def heldout_batches(self, split, batch_size):
        raise NotImplementedError

    def metrics(self, predictions, example):
        raise NotImplementedError


def build(name: str, task: Task) -> torch.nn.Module:
    torch.manual_seed(0)
    return importlib.import_module(f"equibench_baselines.{name}").build_model(task)


def double(example: Example) -> Example:
    inputs = example.inputs.clone()
    for key in ("x", "pos", "t"):
        if key in inputs:
            inputs[key] = inputs[key].double()
    return Example(inputs, {k: v.double() for k, v in example.targets.items()}, example.size)


def with_positions(batch: Batch, pos: torch.Tensor) -> Batch:
    moved = batch.clone()
    moved.pos = pos
    return moved


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: a second intra-op thread only adds waits (seconds on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[False, True], ids=["force_field", "flow"])
def task(request) -> FakeTask:
    return FakeTask(flow=request.param)


def test_radius_graph_matches_brute_force():
    generator = torch.Generator().manual_seed(1)
    sizes = torch.tensor([1, 7, 12, 3, 9])
    batch = torch.arange(len(sizes)).repeat_interleave(sizes)
    pos = 2.0 * torch.randn(int(sizes.sum()), 3, generator=generator)
    for cutoff in (2.5, 5.0, float("inf")):
        distance = torch.cdist(pos, pos)
        same = (batch[:, None] == batch[None, :]) & ~torch.eye(len(batch), dtype=torch.bool)
        expected = {tuple(p) for p in (same & (distance <= cutoff)).nonzero().tolist()}
        edges = radius_graph(pos, batch, cutoff)
        assert len(edges.T) == len(expected)
        assert {tuple(p) for p in edges.T.tolist()} == expected


@pytest.mark.parametrize("name", BASELINES)
def test_outputs_keep_the_contract(name, task):
    model = build(name, task)
    example = task.probe_example()
    with torch.no_grad():
        predictions = model(example.inputs)
    check_outputs(task, predictions, example)
    assert not any(p.requires_grad for p in predictions.values())
    card = read_card(f"equibench_baselines.{name}")
    assert model.equivariant is card["equivariant"] and model.card == card["hyperparameters"]
    assert importlib.import_module(f"equibench_baselines.{name}").__doc__.strip()


@pytest.mark.parametrize("name", BASELINES)
def test_a_grid_task_is_refused_with_a_value_error(name):
    task = FakeTask(flow=False)
    task.outputs = (OutputSpec("clean", "grid", "grid", (4, 8, 8, 8)),)
    with pytest.raises(ValueError, match="'clean' is a grid"):
        build(name, task)


@pytest.mark.parametrize("name", BASELINES)
def test_forces_are_minus_the_energy_gradient(name):
    task = FakeTask(flow=False)
    model = build(name, task).double().eval()
    batch = double(task.probe_example()).inputs
    direction = torch.randn(batch.pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    step = 1e-5
    with torch.no_grad():
        forces = model(batch)["forces"]
        up = model(with_positions(batch, batch.pos + step * direction))["energy"]
        down = model(with_positions(batch, batch.pos - step * direction))["energy"]
    finite_difference = (up - down) / (2 * step)
    directional = -torch.zeros_like(up).index_add_(0, batch.batch, (forces * direction).sum(-1))
    torch.testing.assert_close(finite_difference, directional, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", BASELINES)
def test_a_force_loss_trains_the_encoder(name):
    """The force graph is kept in training, so a loss on forces alone reaches the first layer."""
    task = FakeTask(flow=False)
    model = build(name, task)
    model(task.probe_example().inputs)["forces"].pow(2).sum().backward()
    first_layer = next(model.encoder.parameters())
    assert first_layer.grad is not None and first_layer.grad.abs().sum() > 0


@pytest.mark.parametrize("name", BASELINES)
def test_rotation_equivariance_is_exact_only_where_claimed(name, task):
    model = build(name, task).double()
    rotations = random_rotations(4, torch.Generator().manual_seed(3), dtype=torch.float64)
    result = probe_equivariance(model, task.geometry, double(task.probe_example()), task.outputs, rotations)
    if name in EXACTLY_EQUIVARIANT:
        assert model.equivariant
        assert max(result.deviation.values()) < 1e-10
    else:
        assert not model.equivariant
        assert min(result.deviation.values()) > 1e-3


@pytest.mark.parametrize("name", BASELINES)
def test_translation_invariance_and_centred_vectors(name, task):
    model = build(name, task).double()
    batch = double(task.probe_example()).inputs
    offsets = 10 * torch.randn(batch.num_graphs, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        plain = model(batch)
        moved = model(with_positions(batch, batch.pos + offsets[batch.batch]))
    for spec in task.outputs:
        torch.testing.assert_close(moved[spec.name], plain[spec.name], rtol=1e-9, atol=1e-9)
        if spec.kind == "vector":
            net = torch.zeros(batch.num_graphs, 3, dtype=torch.float64).index_add_(0, batch.batch, plain[spec.name])
            torch.testing.assert_close(net, torch.zeros_like(net), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", BASELINES)
def test_permutation_equivariance(name, task):
    model = build(name, task).double()
    batch = double(task.probe_example()).inputs
    # shuffle atoms within each molecule: sort by (molecule, random key)
    key = torch.rand(batch.num_nodes, generator=torch.Generator().manual_seed(5))
    order = torch.argsort(batch.batch.double() + 0.5 * key)
    permuted = batch.clone()
    permuted.x, permuted.pos = batch.x[order], batch.pos[order]
    with torch.no_grad():
        plain, shuffled = model(batch), model(permuted)
    for spec in task.outputs:
        expected = plain[spec.name][order] if spec.level == "node" else plain[spec.name]
        torch.testing.assert_close(shuffled[spec.name], expected, rtol=1e-9, atol=1e-9)


def test_transformer_eval_mode_matches_training_mode_on_padded_batches(task):
    # molecules of different sizes are padded; torch's inference fast path once turned the
    # float attention mask into NaN in eval mode
    model = build("transformer", task)
    example = task.probe_example(n_molecules=4, seed=3)
    with torch.no_grad():
        training = model(example.inputs)
        model.eval()
        evaluation = model(example.inputs)
    for name, value in evaluation.items():
        assert torch.isfinite(value).all()
        assert torch.allclose(value, training[name], atol=1e-5)
