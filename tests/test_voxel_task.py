"""The voxel denoising task on a handful of synthetic molecules: batches, noise, loss, metrics."""
import numpy as np
import pytest
import torch

from equibench.contract import check_outputs
from equibench.task import Example
from equibench_tasks.qm9_flow.data import QM9Molecules
from equibench_tasks.voxel_denoise import VoxelDenoiseTask
from equibench.scatter import centre_per_group
from equibench_tasks.voxel_denoise.render import GridSpec, render

D = 16  # the default grid of card.yaml


def synthetic_molecules(n: int = 24, seed: int = 0) -> QM9Molecules:
    """``n`` random molecules of 1-9 atoms (H, C, N, O, F) within ±3 Å."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 10, n)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    z = rng.choice(np.array([1, 6, 7, 8, 9], dtype=np.uint8), ptr[-1])
    pos = rng.uniform(-3, 3, (ptr[-1], 3)).astype(np.float32)
    return QM9Molecules(z=z, pos=pos, ptr=ptr, index=np.arange(1, n + 1), smiles=np.array(["C"] * n, dtype=object))


@pytest.fixture
def task():
    split = {"train": np.arange(0, 14), "val": np.arange(14, 19), "test": np.arange(19, 24)}
    return VoxelDenoiseTask(molecules=synthetic_molecules(), split=split)


def test_description_and_output_spec(task):
    (spec,) = task.outputs
    assert (spec.name, spec.kind, spec.level, spec.feature_shape) == ("grid", "grid", "grid", (5, D, D, D))
    assert task.probe_settings.group == "cube" and task.probe_settings.n_examples == 16
    assert task.noise_sigma == 0.5 and task.budget.steps > 0
    assert len(task.split_hash()) == 64


def test_train_batch_shapes_and_reproducibility(task):
    for augment in (False, True):
        a = task.train_batch(4, torch.Generator().manual_seed(3), augment)
        b = task.train_batch(4, torch.Generator().manual_seed(3), augment)
        assert a.size == 4 and a.inputs.shape == (4, 5, D, D, D) and a.targets["grid"].shape == (4, 5, D, D, D)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets["grid"], b.targets["grid"])
        noise = a.inputs - a.targets["grid"]
        assert 0.4 < noise.std() < 0.6  # noise_sigma = 0.5
        check_outputs(task, {"grid": a.targets["grid"]}, a)


def test_augmentation_rotates_coordinates_before_rendering(task):
    from equibench.rotations import random_rotations

    generator = torch.Generator().manual_seed(5)
    example = task.train_batch(3, generator, augment=True)
    generator = torch.Generator().manual_seed(5)
    pick = torch.randint(14, (3,), generator=generator)
    rotations = random_rotations(3, generator)
    z, pos, batch = task.molecules.gather(pick.numpy())
    pos = centre_per_group(pos, batch, 3)
    expected = render(z, torch.einsum("nij,nj->ni", rotations[batch], pos), batch, 3, task.grid)
    assert torch.allclose(example.targets["grid"], expected, atol=1e-6)


def test_heldout_batches_cover_the_split_with_fixed_noise(task):
    first = list(task.heldout_batches("val", 2))
    second = list(task.heldout_batches("val", 3))  # other batch size, same examples and noise
    assert [e.size for e in first] == [2, 2, 1]
    cat = lambda examples, key: torch.cat([e.inputs if key is None else e.targets[key] for e in examples])  # noqa: E731
    assert torch.equal(cat(first, None), cat(second, None)) and torch.equal(cat(first, "grid"), cat(second, "grid"))
    noise = cat(first, None) - cat(first, "grid")
    assert not torch.allclose(noise[0], noise[1])  # each example has its own noise
    test_noise = torch.cat([e.inputs - e.targets["grid"] for e in task.heldout_batches("test", 5)])
    assert not torch.allclose(noise, test_noise)  # and each split its own
    with pytest.raises(ValueError, match="'val' or 'test'"):
        next(task.heldout_batches("train", 2))


def test_probe_example_is_fixed(task):
    a, b = task.probe_example(), task.probe_example()
    assert a.size == 5 and torch.equal(a.inputs, b.inputs)  # only 5 test molecules here


def test_loss_is_the_mean_over_voxels_and_metrics(task):
    example = next(task.heldout_batches("val", 4))
    target = example.targets["grid"]
    prediction = target + 0.1
    assert task.loss({"grid": prediction}, example).item() == pytest.approx(0.01, rel=1e-5)
    metrics = task.metrics({"grid": prediction}, example)
    assert metrics["mse"][0] / metrics["mse"][1] == pytest.approx(0.01, rel=1e-5)
    assert metrics["psnr"][0] / metrics["psnr"][1] == pytest.approx(20.0, rel=1e-5)
    identity = task.loss({"grid": example.inputs}, example).item()
    assert 0.2 < identity < 0.3  # copying the noisy input scores about noise_sigma² = 0.25


def test_subset_and_bad_arguments(task):
    split = task.split_indices()
    small = VoxelDenoiseTask(subset=3, molecules=task.molecules, split=split)
    assert len(small.train_indices) == 3 and small.split_hash() == task.split_hash()
    with pytest.raises(ValueError, match="Did you mean: qm9"):
        VoxelDenoiseTask(dataset="qm8", molecules=task.molecules, split=split)
    with pytest.raises(ValueError, match="subset 99 exceeds"):
        VoxelDenoiseTask(subset=99, molecules=task.molecules, split=split)
    with pytest.raises(ValueError, match="needs its `molecules`"):
        VoxelDenoiseTask(split=split)


def test_voxmol_grid_setting():
    split = {"train": np.arange(2), "val": np.arange(2, 3), "test": np.arange(3, 4)}
    task = VoxelDenoiseTask(dataset="qm9-voxmol", molecules=synthetic_molecules(4), split=split)
    assert task.outputs[0].feature_shape == (5, 32, 32, 32) and task.grid.spacing == 0.25
    assert next(task.heldout_batches("test", 1)).inputs.shape == (1, 5, 32, 32, 32)


@pytest.mark.slow
def test_qm9_split_sizes():
    task = VoxelDenoiseTask()
    sizes = {name: len(index) for name, index in task.split_indices().items()}
    assert sizes == {"train": 100_000, "val": 256, "test": 1_000}
    example = task.probe_example()
    assert isinstance(example, Example) and example.inputs.shape == (16, 5, D, D, D)


def test_runner_trains_and_probes_on_synthetic_molecules(monkeypatch, tmp_path):
    import equibench.runner as runner

    split = {"train": np.arange(0, 14), "val": np.arange(14, 19), "test": np.arange(19, 24)}

    class TinyVoxelTask(VoxelDenoiseTask):
        def __init__(self, dataset=None, data_dir=None, subset=None, download=False):
            super().__init__(dataset, data_dir, subset, download, molecules=synthetic_molecules(), split=split,
                             grid=GridSpec(size=8, spacing=1.0))

    monkeypatch.setattr(runner, "load_task_class", lambda name: TinyVoxelTask)
    config = runner.RunConfig(task="voxel_denoise", model="equibench_baselines.voxel_e3nn:build_model", steps=2,
                              batch_size=2, out=str(tmp_path), progress=False, eval_steps=[0, 2])
    results = runner.Runner(config).run()
    assert results["model"]["equivariant"] is True and results["model"]["augmentation"] is False
    assert [point["step"] for point in results["curve"]] == [0, 2] and results["probe"]["k"] == 24
    assert results["final"]["metrics"]["mse"] > 0 and "psnr" in results["final"]["metrics"]
    assert results["curve"][-1]["decomposition"]["combined"]["relative"] < 1e-9  # float32 floor ~1e-13
