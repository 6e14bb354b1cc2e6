"""Tests of the embedded GFN2-xTB MD17-style data and of its generator script.

The data checks need only numpy.  The generator checks (tiny trajectories, resume, a
finite-difference force check against the committed data) need ase and tblite and are skipped
where those are not installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tasks" / "md17" / "generate_xtb.py"
DATA = REPO / "tasks" / "md17" / "data"

# element sequences of rMD17 (the generator orders atoms the same way)
RMD17_Z = {
    "ethanol": [6, 6, 8, 1, 1, 1, 1, 1, 1],
    "aspirin": [6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 6, 6, 8, 1, 1, 1, 1, 1, 1, 1, 1],
}
N_FRAMES = {"train": 1000, "test": 500}
CASES = [(m, s) for m in RMD17_Z for s in N_FRAMES]


def _load_script():
    spec = importlib.util.spec_from_file_location("equibench_generate_xtb", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(molecule: str, split: str) -> dict:
    path = DATA / f"xtb_{molecule}_{split}.npz"
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


# ----------------------------------------------------------------------------- committed data
@pytest.mark.parametrize("molecule,split", CASES)
def test_layout_matches_rmd17(molecule, split):
    d = _load(molecule, split)
    n, na = N_FRAMES[split], len(RMD17_Z[molecule])
    assert d["nuclear_charges"].dtype == np.uint8
    assert d["nuclear_charges"].tolist() == RMD17_Z[molecule]
    assert d["coords"].dtype == np.float64 and d["coords"].shape == (n, na, 3)
    assert d["energies"].dtype == np.float64 and d["energies"].shape == (n,)
    assert d["forces"].dtype == np.float64 and d["forces"].shape == (n, na, 3)
    assert d["md_steps"].dtype == np.int64 and d["md_steps"].shape == (n,)
    for key in ("coords", "energies", "forces", "kinetic_temperatures"):
        assert np.isfinite(d[key]).all(), key
    meta = json.loads(str(d["metadata"]))
    assert meta["config"]["molecule"] == molecule and meta["config"]["split"] == split
    assert meta["units"]["energies"] == "kcal/mol"


@pytest.mark.parametrize("molecule,split", CASES)
def test_physically_sensible(molecule, split):
    d = _load(molecule, split)
    cfg = json.loads(str(d["metadata"]))["config"]
    # frames are evenly strided in time
    assert (np.diff(d["md_steps"]) == cfg["stride_steps"]).all()
    # canonical sampling near the target temperature
    assert abs(d["kinetic_temperatures"].mean() - cfg["temperature_K"]) < 30
    # a molecule in vacuum: forces sum to zero (translation invariance of the labels)
    assert np.abs(d["forces"].sum(axis=1)).max() < 1e-6
    # bonded geometries throughout: no atom further than 2 A from its nearest neighbour and
    # none closer than 0.6 A
    x = d["coords"]
    dist = np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)
    dist[:, np.arange(x.shape[1]), np.arange(x.shape[1])] = np.inf
    nearest = dist.min(axis=-1)
    assert nearest.min() > 0.6 and nearest.max() < 2.0
    # thermal energy spread: a few kcal/mol, like rMD17 at 500 K
    assert 1.0 < d["energies"].std() < 15.0
    # successive frames are not near-duplicates
    e = d["energies"] - d["energies"].mean()
    assert (e[1:] * e[:-1]).mean() / e.var() < 0.5
    f = d["forces"].reshape(len(e), -1)
    f = f - f.mean(axis=0)
    assert (f[1:] * f[:-1]).sum() / (f * f).sum() < 0.3


@pytest.mark.parametrize("molecule", sorted(RMD17_Z))
def test_train_and_test_are_independent_trajectories(molecule):
    tr, te = _load(molecule, "train"), _load(molecule, "test")
    ctr = json.loads(str(tr["metadata"]))["config"]
    cte = json.loads(str(te["metadata"]))["config"]
    assert {k for k in ctr if ctr[k] != cte[k]} <= {"split", "rng", "n_frames"}
    # no test frame coincides with a training frame
    assert not np.isin(te["energies"], tr["energies"]).any()
    # same ensemble, loosely: the short aspirin trajectories visit conformer basins in
    # different proportions (see tasks/md17/data/README.md, "Known limitations"), which shifts
    # the mean energy by ~0.3 standard deviations; wrong units or temperature would break this
    spread = tr["energies"].std()
    assert abs(tr["energies"].mean() - te["energies"].mean()) < 0.5 * spread


# -------------------------------------------------------------------------------- generator
def _tiny_args(tmp_path, **over):
    a = {"--molecule": "ethanol", "--out-dir": str(tmp_path), "--n-train": "6",
         "--n-test": "3", "--stride": "4", "--equil-steps": "8", "--checkpoint-every": "2"}
    a.update(over)
    return [x for kv in a.items() for x in kv] + ["--no-progress"]


def test_generator_tiny_run_and_resume(tmp_path):
    pytest.importorskip("ase")
    pytest.importorskip("tblite")
    gen = _load_script()

    assert gen.main(_tiny_args(tmp_path / "full")) == 0
    full = np.load(tmp_path / "full" / "xtb_ethanol_train.npz", allow_pickle=False)
    test = np.load(tmp_path / "full" / "xtb_ethanol_test.npz", allow_pickle=False)
    assert full["coords"].shape == (6, 9, 3) and test["coords"].shape == (3, 9, 3)
    assert full["nuclear_charges"].tolist() == RMD17_Z["ethanol"]
    assert full["md_steps"].tolist() == [4, 8, 12, 16, 20, 24]
    assert not np.allclose(full["coords"][0], test["coords"][0])  # different random streams

    # interrupt after the 5th frame (last checkpoint: 4 frames), then resume
    calls = {"n": 0}
    real = gen.energy_forces_kcal

    def flaky(atoms):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(atoms)

    gen.energy_forces_kcal = flaky
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        gen.main(_tiny_args(out, **{"--splits": "train"}))
    gen.energy_forces_kcal = real
    assert (out / "xtb_ethanol_train.ckpt.tmp").exists()
    assert gen.main(_tiny_args(out, **{"--splits": "train"})) == 0
    assert not (out / "xtb_ethanol_train.ckpt.tmp").exists()
    res = np.load(out / "xtb_ethanol_train.npz", allow_pickle=False)
    assert res["md_steps"].tolist() == full["md_steps"].tolist()
    # frames before the checkpoint are bitwise identical; afterwards only the SCF guess differs
    np.testing.assert_array_equal(res["coords"][:4], full["coords"][:4])
    np.testing.assert_allclose(res["coords"], full["coords"], atol=1e-5)
    np.testing.assert_allclose(res["energies"], full["energies"], atol=1e-3)

    # a checkpoint or output written with other settings is refused
    with pytest.raises(SystemExit):
        gen.main(_tiny_args(out, **{"--splits": "train", "--seed": "7"}))


def test_committed_forces_are_minus_energy_gradient():
    pytest.importorskip("ase")
    pytest.importorskip("tblite")
    gen = _load_script()
    d = _load("ethanol", "test")
    r = gen.finite_difference_error(d["nuclear_charges"], d["coords"][0], float(d["energies"][0]),
                                    d["forces"][0])
    assert r["max_abs_fd_minus_stored_kcal_mol_A"] < 0.05
    assert r["max_abs_recomputed_minus_stored_kcal_mol_A"] < 0.05
    assert r["abs_recomputed_minus_stored_energy_kcal_mol"] < 1e-3
