"""Tests of the QM9 data layer: flat storage, batching, caching, loaders and EDM split."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from equibench_tasks.qm9_flow import data

RAW = Path(__file__).parent / "data" / "qm9_raw"
SAMPLE_CSV = RAW / "qm9pack_sample.csv"  # QM9 molecules 1-5 in qm9pack's format, shuffled

METHANE_POS = np.array(
    [
        [-0.0126981359, 1.0858041578, 0.0080009958],
        [0.002150416, -0.0060313176, 0.0019761204],
        [1.0117308433, 1.4637511618, 0.0002765748],
        [-0.540815069, 1.4475266138, -0.8766437152],
        [-0.5238136345, 1.4379326443, 0.9063972942],
    ],
    dtype=np.float32,
)


@pytest.fixture
def sample():
    return data.parse_qm9pack_csvs([SAMPLE_CSV])


def test_parse_sorts_by_index_and_reads_atoms(sample):
    assert sample.index.tolist() == [1, 2, 3, 4, 5]
    assert sample.smiles.tolist() == ["C", "N", "O", "C#C", "C#N"]
    assert sample.n_atoms.tolist() == [5, 4, 3, 4, 3]
    assert sample.z.dtype == np.uint8 and sample.pos.dtype == np.float32
    z, pos = sample.molecule(0)
    assert z.tolist() == [6, 1, 1, 1, 1]
    np.testing.assert_array_equal(pos, METHANE_POS)


def test_gather_matches_per_molecule_concatenation(sample):
    indices = [4, 0, 0, 2]
    z, pos, batch = sample.gather(torch.tensor(indices))
    assert (z.dtype, pos.dtype, batch.dtype) == (torch.int64, torch.float32, torch.int64)
    expected = [sample.molecule(i) for i in indices]
    np.testing.assert_array_equal(z.numpy(), np.concatenate([m[0] for m in expected]))
    np.testing.assert_array_equal(pos.numpy(), np.concatenate([m[1] for m in expected]))
    counts = [len(m[0]) for m in expected]
    np.testing.assert_array_equal(batch.numpy(), np.repeat(np.arange(len(indices)), counts))


def test_subset_keeps_order_and_rebuilds_offsets(sample):
    sub = sample.subset(np.array([3, 1]))
    assert sub.index.tolist() == [4, 2]
    assert sub.ptr.tolist() == [0, 4, 8]
    assert sub.smiles.tolist() == ["C#C", "N"]
    np.testing.assert_array_equal(sub.molecule(1)[1], sample.molecule(1)[1])


@pytest.mark.parametrize(
    "indices, error", [([5], IndexError), ([-1], IndexError), ([0.0], TypeError)]
)
def test_bad_indices_raise(sample, indices, error):
    with pytest.raises(error):
        sample.gather(indices)


def test_inconsistent_arrays_raise(sample):
    with pytest.raises(ValueError, match="ptr"):
        data.QM9Molecules(
            z=sample.z, pos=sample.pos, ptr=sample.ptr[:-1], index=sample.index,
            smiles=sample.smiles,
        )


def test_cache_round_trip_and_corruption(sample, tmp_path):
    path = tmp_path / "cache.npz"
    data.write_cache(sample, path)
    loaded = data.read_cache(path)
    assert loaded.sha256() == sample.sha256()
    assert loaded.smiles.tolist() == sample.smiles.tolist()
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["pos"] = arrays["pos"] + 1.0
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="sha256"):
        data.read_cache(path)


def test_load_qm9pack_reads_existing_cache_without_parsing(sample, tmp_path, monkeypatch):
    data.write_cache(sample, tmp_path / data.CACHE_NAME)
    monkeypatch.setattr(data, "parse_qm9pack_csvs", pytest.fail)
    assert data.load_qm9pack(tmp_path).sha256() == sample.sha256()


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    from equibench.datacache import cache_dir

    monkeypatch.setenv("EQUIBENCH_DATA", str(tmp_path))
    assert cache_dir("qm9") == tmp_path / "qm9"


def test_missing_qm9pack_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install qm9pack"):
        data.load_qm9pack(tmp_path)


def test_raw_loader_drops_uncharacterized_and_matches_qm9pack(sample):
    raw = data.load_gdb9_raw(RAW)
    assert raw.index.tolist() == [1, 2, 4, 5]  # index 3 is listed in the fixture's exclusions
    expected = sample.subset([0, 1, 3, 4])
    np.testing.assert_array_equal(raw.z, expected.z)
    np.testing.assert_allclose(raw.pos, expected.pos, atol=6e-5)  # SDF keeps 4 decimals
    assert raw.smiles.tolist() == ["C", "N", "C#C", "C#N"]


def test_read_uncharacterized_skips_header_and_rulers():
    assert data.read_uncharacterized(RAW / "uncharacterized.txt").tolist() == [3, 58]


def test_missing_raw_file_is_named(tmp_path):
    for name in ("gdb9.sdf", "gdb9.sdf.csv"):
        shutil.copy(RAW / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="uncharacterized.txt"):
        data.load_gdb9_raw(tmp_path)


def test_edm_split_sizes_and_partition():
    split = data.edm_split()
    sizes = {name: len(part) for name, part in split.items()}
    assert sizes == {"train": 100_000, "valid": 17_748, "test": 13_083}
    everything = np.concatenate(list(split.values()))
    np.testing.assert_array_equal(np.sort(everything), np.arange(130_831))
    assert all(np.all(np.diff(v) > 0) for v in split.values())


def test_edm_split_is_edm_procedure_and_leaves_global_rng_alone():
    state = np.random.get_state()
    try:
        np.random.seed(0)  # EDM qm9/data/prepare/qm9.py::gen_splits_gdb9, verbatim
        perm = np.random.permutation(130_831)
        train, valid, test, extra = np.split(perm, [100_000, 117_748, 130_831])
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        split = data.edm_split()
        np.testing.assert_array_equal(np.random.get_state()[1], before)
    finally:
        np.random.set_state(state)
    assert len(extra) == 0
    for name, part in (("train", train), ("valid", valid), ("test", test)):
        np.testing.assert_array_equal(split[name], np.sort(part))


def test_split_hash_is_pinned_and_sensitive():
    from equibench.task import hash_split

    split = data.edm_split()
    assert hash_split(split) == "5a55a1281f2fe9c0945a56954765431e335190981259112a19bf0136de0be93a"
    changed = dict(split, test=split["test"][:-1])
    assert hash_split(changed) != hash_split(split)


@pytest.mark.slow
def test_full_qm9pack_load():
    mols = data.load_qm9pack()
    assert len(mols) == 130_831
    assert np.all(np.diff(mols.index) > 0)
    assert mols.index[0] == 1 and mols.index[-1] == 133_885
    assert 58 not in set(mols.index.tolist())  # first uncharacterized molecule
    assert set(np.unique(mols.z).tolist()) == {1, 6, 7, 8, 9}
    assert data.load_qm9pack().sha256() == mols.sha256()
