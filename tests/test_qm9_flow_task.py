"""The QM9 flow-matching task: examples follow the flow definition, held-out data is fixed, the
probe sees rotations act on positions only, and the sampler integrates a known velocity field."""
import numpy as np
import pytest
import torch

from equibench.probe import Twirled, probe_equivariance
from equibench.rotations import random_rotations
from equibench_tasks.qm9_flow import QM9FlowTask
from equibench_tasks.qm9_flow.chemistry import sample_quality
from equibench_tasks.qm9_flow.data import load_gdb9_raw
from equibench.scatter import centre_per_group
from equibench_tasks.qm9_flow.sampling import sample_molecules

RAW = __import__("pathlib").Path(__file__).parent / "data" / "qm9_raw"


@pytest.fixture(scope="module")
def task():
    return QM9FlowTask(subset=500)


def test_edm_split_sizes_and_subset(task):
    split = task.split_indices()
    assert len(split["train"]) == 500 and len(split["val"]) == 1000 and len(split["test"]) == 2000
    assert len(task.molecules) == 130_831


def test_train_example_is_the_linear_flow(task):
    example = task.train_batch(8, torch.Generator().manual_seed(0), augment=True)
    inputs, targets = example.inputs, example.targets
    t = inputs.t[inputs.batch][:, None]
    x0 = inputs.pos - t * targets["pos_velocity"]  # x_t = x_0 + t (x_1 - x_0)
    x1 = x0 + targets["pos_velocity"]
    for values in (x0, x1):
        assert centre_per_group(values, inputs.batch, 8).sub(values).abs().max() < 1e-5  # zero CoM
    h1 = inputs.x + (1 - t) * targets["type_velocity"]
    assert torch.allclose(h1.sum(1), torch.ones(len(h1)), atol=1e-5)  # one-hot at t = 1
    assert set(h1.round().unique().tolist()) <= {0.0, 1.0}


def test_heldout_is_deterministic_and_covers_split(task):
    first = [e.targets["pos_velocity"] for e in task.heldout_batches("val", 300)]
    again = [e.targets["pos_velocity"] for e in QM9FlowTask(subset=10).heldout_batches("val", 300)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert sum(e.size for e in task.heldout_batches("test", 300)) == 2000


def test_probe_equivariant_velocity_reads_zero(task):
    # u(x) = -x (towards the centre) and type velocity from distances: exactly equivariant
    def model(batch):
        centred = centre_per_group(batch.pos, batch.batch, batch.num_graphs)
        return {"pos_velocity": -centred * batch.t[batch.batch][:, None],
                "type_velocity": batch.x * centred.norm(dim=1, keepdim=True)}

    example = task.probe_example()
    rotations = random_rotations(8, torch.Generator().manual_seed(0))
    result = probe_equivariance(model, task.geometry, example, task.outputs, rotations)
    assert result.combined.relative < 1e-6
    assert result.combined.total > 0.1


def test_sampler_integrates_known_flow_exactly():
    # A constant velocity field is integrated exactly by Euler and Heun alike: types end at
    # h_0 + 10 e_carbon (carbon by a wide margin), positions stay at x_0.
    def model(batch):
        push = torch.zeros_like(batch.x)
        push[:, 1] = 10.0
        return {"pos_velocity": torch.zeros_like(batch.pos), "type_velocity": push}

    for method in ("euler", "heun"):
        for velocity in (model, Twirled(model, QM9FlowTask.geometry, QM9FlowTask.outputs,
                                        random_rotations(4, torch.Generator().manual_seed(1)))):
            molecules = sample_molecules(velocity, torch.tensor([3, 5]), (1, 6, 7, 8, 9), 7, method,
                                         torch.Generator().manual_seed(0), torch.device("cpu"))
            assert [len(z) for z, _ in molecules] == [3, 5]
            assert all((z == 6).all() for z, _ in molecules)
    with pytest.raises(ValueError, match="unknown sampling method"):
        sample_molecules(model, torch.tensor([3]), (1, 6), 5, "rk4", torch.Generator(), torch.device("cpu"))


def test_real_molecules_as_samples_score_like_data(task):
    test_positions = task.split_indices()["test"][:300]
    molecules = [task.molecules.molecule(int(i)) for i in test_positions]
    quality = sample_quality(molecules)
    assert quality["molecule_stability"] > 0.9 and quality["validity"] > 0.93 and quality["uniqueness"] > 0.99


def test_task_from_raw_files_fixture():
    molecules = load_gdb9_raw(RAW)
    split = {"train": np.array([0, 1]), "valid": np.array([2]), "test": np.array([3])}
    task = QM9FlowTask(dataset="gdb9-raw", data_dir=str(RAW), molecules=molecules, split=split)
    example = task.train_batch(2, torch.Generator().manual_seed(0), augment=False)
    assert example.inputs.x.shape[1] == 5 and example.size == 2
