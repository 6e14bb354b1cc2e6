"""MD17 data: the real rMD17 files load with the right units, splits and checksums."""
import numpy as np
import pytest

from equibench.datacache import ChecksumError, DataMissingError
from equibench_tasks.md17 import MD17Task
from equibench_tasks.md17.data import load_rmd17, read_rmd17_layout


def test_real_rmd17_ethanol_loads(rmd17_dir):
    train, test = load_rmd17("ethanol", str(rmd17_dir))
    assert len(train) == 1000 and len(test) == 1000
    assert sorted(train.z.tolist()) == [1, 1, 1, 1, 1, 1, 6, 6, 8]
    # rMD17 ethanol: energies around -97,000 kcal/mol, force components of tens of kcal/mol/Å
    assert -98_000 < train.energy.mean() < -96_000
    assert 10 < np.sqrt((train.forces**2).mean()) < 60


def test_md17_task_on_real_rmd17(rmd17_dir):
    task = MD17Task(dataset="rmd17-aspirin", data_dir=str(rmd17_dir))
    split = task.split_indices()
    assert [len(split[k]) for k in ("train", "val", "test")] == [950, 50, 1000]
    assert not set(split["train"]) & set(split["val"])
    assert task.split_hash() == MD17Task(dataset="rmd17-aspirin", data_dir=str(rmd17_dir)).split_hash()
    example = next(task.heldout_batches("val", 4))
    assert example.inputs.pos.shape == (4 * 21, 3) and example.targets["forces"].shape == (84, 3)
    assert example.inputs.x.shape == (84, task.node_feature_dim)
    # positions are centred per molecule
    centre = example.inputs.pos.reshape(4, 21, 3).mean(1)
    assert centre.abs().max() < 1e-5


def test_tampered_rmd17_file_fails_checksum(rmd17_dir, tmp_path):
    for split in ("train", "test"):
        data = dict(np.load(rmd17_dir / f"rmd17_ethanol_{split}_01.npz"))
        data["energies"] = data["energies"] + 1.0
        np.savez(tmp_path / f"rmd17_ethanol_{split}_01.npz", **data)
    with pytest.raises(ChecksumError, match="sha256"):
        load_rmd17("ethanol", str(tmp_path))


def test_missing_rmd17_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIBENCH_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataMissingError, match="rmd17_uracil_train_01.npz.*--data-dir"):
        load_rmd17("uracil", str(tmp_path))


def test_unknown_dataset_suggests_close_match():
    with pytest.raises(ValueError, match="Did you mean: rmd17-ethanol"):
        MD17Task(dataset="rmd17-ethanl")


def test_rmd17_layout_rejects_nan(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, nuclear_charges=np.array([1, 1], dtype=np.uint8), coords=np.full((2, 2, 3), np.nan),
             energies=np.zeros(2), forces=np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="pos contains NaN"):
        read_rmd17_layout(path)
