#!/usr/bin/env python
"""Generate the embedded offline MD17-style dataset with GFN2-xTB Langevin dynamics.

The benchmark ships a small, self-made stand-in for rMD17 so that the MD17 task runs without
downloading anything.  This script produces it: for one molecule (``ethanol`` or ``aspirin``)
it relaxes a hard-coded starting geometry with GFN2-xTB (tblite), then runs two *independent*
Langevin trajectories at 500 K (different random streams), and writes

* ``xtb_<molecule>_train.npz`` -- trajectory A, default 1000 frames (the training pool), and
* ``xtb_<molecule>_test.npz``  -- trajectory B, default 500 frames (the held-out test set),

mirroring the ``rmd17_<molecule>_{train,test}_01.npz`` files of the revised MD17 dataset.
Because the two files come from different trajectories, no test frame is a time neighbour of a
training frame.

File layout (same keys, dtypes and units as rMD17, so one loader reads both):

==========================  ===========================  =========  ===================
key                         shape                        dtype      unit
==========================  ===========================  =========  ===================
``nuclear_charges``         (n_atoms,)                   uint8      atomic number
``coords``                  (n_frames, n_atoms, 3)       float64    Angstrom
``energies``                (n_frames,)                  float64    kcal/mol (total)
``forces``                  (n_frames, n_atoms, 3)       float64    kcal/mol/Angstrom
``md_steps``                (n_frames,)                  int64      MD step of the frame,
                                                                    counted from the start
                                                                    of production
``kinetic_temperatures``    (n_frames,)                  float64    K (instantaneous)
``metadata``                ()                           str        JSON: settings/versions
==========================  ===========================  =========  ===================

The rMD17-only keys ``old_indices``/``old_energies``/``old_forces`` are not written; the last
three keys above are extras that an rMD17 loader can ignore.  Frames are stored in time order.
Atoms are ordered exactly as in rMD17 (ethanol: C C O H6, aspirin: C7 O3 C2 O H8, with the
same chemical role per index), so ``nuclear_charges`` equals rMD17's.

Usage (the exact commands that produced the committed files; run from the repo root)::

    OMP_NUM_THREADS=1 python tasks/md17/generate_xtb.py --molecule ethanol
    OMP_NUM_THREADS=1 python tasks/md17/generate_xtb.py --molecule aspirin
    OMP_NUM_THREADS=1 python tasks/md17/generate_xtb.py --molecule ethanol --verify-only
    OMP_NUM_THREADS=1 python tasks/md17/generate_xtb.py --molecule aspirin --verify-only

Resumability: every ``--checkpoint-every`` frames (and after equilibration) the script writes
``<out-dir>/xtb_<molecule>_<split>.ckpt.tmp`` (positions, momenta, the generator's bit state,
the MD step counter and all frames so far; atomically replaced).  Rerunning the same command
continues from it; a checkpoint written with different settings is refused unless ``--restart``
is given.  The checkpoint is deleted once the final ``.npz`` is written; an existing final file
with the same settings is skipped unless ``--overwrite``.  Note: the continuation restores the
exact dynamical state and random stream, but tblite restarts its SCF from a fresh guess (the
previous wavefunction is not checkpointed), so a resumed trajectory agrees with an uninterrupted
one only to SCF tolerance and then diverges chaotically; it samples the same ensemble.

Requires: numpy, ase (>= 3.29 for ``thermalize_momenta``; older versions fall back to
``MaxwellBoltzmannDistribution``), tblite (with its ASE interface), tqdm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# Energies/forces come from ASE in eV and eV/A; rMD17 stores kcal/mol and kcal/mol/A.
# ase.units.mol / ase.units.kcal = 23.060548... (kcal/mol per eV).
try:
    from ase import units as _ase_units

    EV_TO_KCAL_MOL = _ase_units.mol / _ase_units.kcal
except ImportError:  # pragma: no cover - only for importing the helpers without ase
    EV_TO_KCAL_MOL = 23.060548012069493

DATA_DIR = Path(__file__).resolve().parent / "data"
SPLITS = {"train": 0, "test": 1}  # split id enters the seed: independent random streams
FORMAT_VERSION = 1

# --------------------------------------------------------------------------------------------
# Starting geometries (Angstrom).  Made once with RDKit (ETKDG, randomSeed=20240607, then MMFF94
# relaxation) from atom-mapped SMILES, with atoms reordered to the rMD17 convention:
#   ethanol: [CH2:1]([CH3:2])[OH:3]; H on C0, C0, C1, C1, C1, O2
#   aspirin: [cH:1]1[cH:3][cH:4][cH:2][c:7]([O:13][C:12](=[O:9])[CH3:5])[c:6]1[C:11](=[O:8])[OH:10]
#            H on O9, C0, C1, C2, C3, C4, C4, C4
# They are hard-coded so regeneration does not depend on the RDKit version; the script relaxes
# them with GFN2-xTB (BFGS) before any dynamics, so only the basin matters, not the MMFF details.
# --------------------------------------------------------------------------------------------
GEOMETRIES: dict[str, list[tuple[str, float, float, float]]] = {
    "ethanol": [
        ("C", 0.3930, -0.5112, 0.2534),
        ("C", -0.8593, 0.2587, -0.1115),
        ("O", 1.5074, 0.3680, 0.2979),
        ("H", 0.2843, -0.9742, 1.2385),
        ("H", 0.5963, -1.2993, -0.4779),
        ("H", -1.7305, -0.4019, -0.1338),
        ("H", -0.7506, 0.7316, -1.0930),
        ("H", -1.0420, 1.0615, 0.6103),
        ("H", 1.6015, 0.7669, -0.5839),
    ],
    "aspirin": [
        ("C", -2.2451, 0.1037, 0.6165),
        ("C", -0.6572, -1.6454, -0.8765),
        ("C", -2.7253, -1.1641, 0.2718),
        ("C", -1.9337, -2.0351, -0.4761),
        ("C", 3.3953, 0.2638, -0.5452),
        ("C", -0.9620, 0.5128, 0.2204),
        ("C", -0.1729, -0.3843, -0.5140),
        ("O", 0.5965, 2.3695, 0.2079),
        ("O", 1.9311, -0.6984, 1.1143),
        ("O", -1.3129, 2.5609, 1.3350),
        ("C", -0.4565, 1.8694, 0.5583),
        ("C", 2.0832, -0.2164, -0.0009),
        ("O", 1.1034, -0.0449, -0.9725),
        ("H", -0.8517, 3.4118, 1.4898),
        ("H", -2.8856, 0.7666, 1.1939),
        ("H", -0.0400, -2.3229, -1.4599),
        ("H", -3.7206, -1.4696, 0.5866),
        ("H", -2.3115, -3.0186, -0.7450),
        ("H", 3.3123, 1.3115, -0.8449),
        ("H", 3.6936, -0.3574, -1.3932),
        ("H", 4.1595, 0.1872, 0.2335),
    ],
}


# ------------------------------------------------------------------------------------ helpers
def make_calculator(accuracy: float = 1.0):
    """A silent GFN2-xTB calculator (tblite's ASE interface; electronic temperature 300 K).

    ``accuracy`` is tblite's numerical accuracy (SCF/integral thresholds scale with it; 1.0 is
    the xtb/tblite default).  With the default, recomputing a frame's forces from a fresh
    wavefunction guess reproduces the stored ones to about 0.01 kcal/mol/A (max component).
    """
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0, accuracy=accuracy)


def starting_atoms(molecule: str):
    """The hard-coded (un-relaxed) starting geometry as an ``ase.Atoms``."""
    from ase import Atoms

    rows = GEOMETRIES[molecule]
    return Atoms(symbols=[r[0] for r in rows], positions=[r[1:] for r in rows])


def relax(atoms, fmax: float, accuracy: float = 1.0, max_steps: int = 1000):
    """Relax ``atoms`` in place with BFGS on the GFN2-xTB surface; returns the number of steps."""
    from ase.optimize import BFGS

    atoms.calc = make_calculator(accuracy)
    opt = BFGS(atoms, logfile=None)
    converged = opt.run(fmax=fmax, steps=max_steps)
    if not converged:
        raise RuntimeError(f"BFGS did not reach fmax={fmax} eV/A in {max_steps} steps")
    return opt.nsteps


def energy_forces_kcal(atoms) -> tuple[float, np.ndarray]:
    """Potential energy (kcal/mol) and raw forces (kcal/mol/A) of ``atoms`` with its calculator.

    ``apply_constraint=False`` matters: the MD runs with ``FixCom``, whose ``adjust_forces``
    would otherwise project a mass-weighted component out of the stored forces (the dynamics
    itself uses ``get_forces(md=True)``, which leaves the forces raw).
    """
    e = float(atoms.get_potential_energy()) * EV_TO_KCAL_MOL
    f = np.asarray(atoms.get_forces(apply_constraint=False), dtype=np.float64) * EV_TO_KCAL_MOL
    return e, f


def versions() -> dict:
    import ase

    try:
        import tblite.library as tbl

        tbl_version = ".".join(str(v) for v in tbl.get_version())
    except Exception:  # pragma: no cover
        tbl_version = "unknown"
    return {"tblite": tbl_version, "ase": ase.__version__, "numpy": np.__version__}


def output_path(out_dir: Path, molecule: str, split: str) -> Path:
    return out_dir / f"xtb_{molecule}_{split}.npz"


def checkpoint_path(out_dir: Path, molecule: str, split: str) -> Path:
    # ``*.tmp`` is git-ignored in this repository, so checkpoints never get committed.
    return out_dir / f"xtb_{molecule}_{split}.ckpt.tmp"


def split_config(args: argparse.Namespace, split: str) -> dict:
    """Every setting that determines the trajectory of ``split`` (stored and compared on resume)."""
    return {
        "format_version": FORMAT_VERSION,
        "molecule": args.molecule,
        "split": split,
        "seed": args.seed,
        "rng": f"numpy.random.default_rng([seed, {SPLITS[split]}]) (PCG64)",
        "method": "GFN2-xTB (tblite ASE calculator, electronic temperature 300 K)",
        "accuracy": args.accuracy,
        "temperature_K": args.temperature,
        "timestep_fs": args.timestep,
        "friction_per_fs": args.friction,
        "stride_steps": args.stride,
        "n_frames": args.n_train if split == "train" else args.n_test,
        "equilibration_steps": args.equil_steps,
        "relax_fmax_eV_per_A": args.fmax,
        "thermostat": "ase.md.langevin.Langevin(fixcm=False) + ase.constraints.FixCom",
        "velocity_init": "Maxwell-Boltzmann at temperature_K, then Stationary + ZeroRotation",
    }


def _atomic_savez(path: Path, compressed: bool, **arrays) -> None:
    tmp = path.with_name(path.name + ".writing.tmp")
    with open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    os.replace(tmp, path)


def _thermalize(atoms, temperature_K: float, rng) -> None:
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)  # zero centre-of-mass momentum (rescaled back to the same temperature)
    ZeroRotation(atoms)  # zero angular momentum (idem)


# ------------------------------------------------------------------------------- generation
def run_split(args: argparse.Namespace, split: str, relaxed_positions: np.ndarray) -> Path:
    """Run (or resume) the trajectory of one split and write its npz; returns the path."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from tqdm import tqdm

    out_dir = Path(args.out_dir)
    out = output_path(out_dir, args.molecule, split)
    ckpt = checkpoint_path(out_dir, args.molecule, split)
    config = split_config(args, split)
    n_frames = config["n_frames"]

    if out.exists() and not args.overwrite:
        with np.load(out, allow_pickle=False) as d:
            stored = json.loads(str(d["metadata"]))["config"]
        if stored == config:
            print(f"[{split}] {out} exists with the same settings; skipping (--overwrite to redo)")
            return out
        raise SystemExit(f"{out} exists with different settings; pass --overwrite to replace it")

    atoms = starting_atoms(args.molecule)
    atoms.positions = relaxed_positions
    atoms.calc = make_calculator(args.accuracy)
    atoms.set_constraint(FixCom())
    rng = np.random.default_rng([args.seed, SPLITS[split]])

    frames: dict[str, list] = {"coords": [], "energies": [], "forces": [], "md_steps": [],
                               "kinetic_temperatures": []}
    steps_done = 0  # MD steps done in total (equilibration + production)
    if ckpt.exists() and not args.restart:
        with np.load(ckpt, allow_pickle=False) as c:
            if json.loads(str(c["config"])) != config:
                raise SystemExit(f"{ckpt} was written with different settings; "
                                 "rerun with the same arguments or pass --restart")
            atoms.set_positions(c["positions"], apply_constraint=False)
            atoms.set_momenta(c["momenta"], apply_constraint=False)
            rng.bit_generator.state = json.loads(str(c["rng_state"]))
            steps_done = int(c["steps_done"])
            n_saved = int(c["n_saved"])
            for k in frames:
                frames[k] = list(c[k][:n_saved])
        print(f"[{split}] resuming from {ckpt}: {steps_done} MD steps, {n_saved} frames")
    else:
        _thermalize(atoms, args.temperature, rng)

    dyn = Langevin(atoms, timestep=args.timestep * units.fs, temperature_K=args.temperature,
                   friction=args.friction / units.fs, fixcm=False, rng=rng, logfile=None)

    def save_checkpoint() -> None:
        _atomic_savez(
            ckpt, compressed=False,
            config=np.array(json.dumps(config, sort_keys=True)),
            positions=atoms.get_positions(), momenta=atoms.get_momenta(),
            rng_state=np.array(json.dumps(rng.bit_generator.state)),
            steps_done=np.array(steps_done), n_saved=np.array(len(frames["energies"])),
            **{k: np.asarray(v) for k, v in frames.items()},
        )

    total = args.equil_steps + n_frames * args.stride
    t0 = time.time()
    with tqdm(total=total, initial=steps_done, unit="step", desc=f"{args.molecule}/{split}",
              disable=args.no_progress, smoothing=0.05) as bar:
        if steps_done < args.equil_steps:  # equilibration, not saved
            dyn.run(args.equil_steps - steps_done)
            bar.update(args.equil_steps - steps_done)
            steps_done = args.equil_steps
            save_checkpoint()
        while len(frames["energies"]) < n_frames:
            dyn.run(args.stride)
            steps_done += args.stride
            bar.update(args.stride)
            e, f = energy_forces_kcal(atoms)
            if not (np.isfinite(e) and np.all(np.isfinite(f))):
                raise RuntimeError(f"non-finite energy/forces at MD step {steps_done}")
            frames["coords"].append(atoms.get_positions().copy())
            frames["energies"].append(e)
            frames["forces"].append(f)
            frames["md_steps"].append(steps_done - args.equil_steps)
            frames["kinetic_temperatures"].append(atoms.get_temperature())
            if len(frames["energies"]) % args.checkpoint_every == 0:
                save_checkpoint()
    wall = time.time() - t0

    metadata = {"config": config, "versions": versions(),
                "units": {"coords": "Angstrom", "energies": "kcal/mol",
                          "forces": "kcal/mol/Angstrom", "kinetic_temperatures": "K"},
                "eV_to_kcal_per_mol": EV_TO_KCAL_MOL, "license": "CC0-1.0",
                "generator": "tasks/md17/generate_xtb.py"}
    _atomic_savez(
        out, compressed=True,
        nuclear_charges=atoms.numbers.astype(np.uint8),
        coords=np.asarray(frames["coords"], dtype=np.float64),
        energies=np.asarray(frames["energies"], dtype=np.float64),
        forces=np.asarray(frames["forces"], dtype=np.float64),
        md_steps=np.asarray(frames["md_steps"], dtype=np.int64),
        kinetic_temperatures=np.asarray(frames["kinetic_temperatures"], dtype=np.float64),
        metadata=np.array(json.dumps(metadata, sort_keys=True)),
    )
    ckpt.unlink(missing_ok=True)
    print(f"[{split}] wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {wall:.0f} s "
          "(this session)")
    return out


# ---------------------------------------------------------------------------- verification
def lag_autocorrelation(x: np.ndarray, lag: int = 1) -> float:
    """Normalised autocorrelation of a series at ``lag`` (per component, pooled if 2-D+)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=0)
    return float((x[:-lag] * x[lag:]).sum() / (x * x).sum() * len(x) / (len(x) - lag))


def finite_difference_error(z: np.ndarray, coords: np.ndarray, energy: float,
                            forces: np.ndarray, h: float = 1e-3, accuracy: float = 1.0) -> dict:
    """Check one stored frame against a fresh GFN2-xTB calculation.

    Returns the largest deviation of the stored forces from -dE/dx by central differences
    (step ``h`` Angstrom, 6 n_atoms single points), and the deviations of a recomputed energy
    and analytic forces from the stored ones (kcal/mol, kcal/mol/A).
    """
    from ase import Atoms

    atoms = Atoms(numbers=z, positions=coords)
    atoms.calc = make_calculator(accuracy)
    fd = np.zeros_like(coords)
    for i in range(len(z)):
        for k in range(3):
            e = []
            for s in (+1, -1):
                p = coords.copy()
                p[i, k] += s * h
                atoms.positions = p
                e.append(atoms.get_potential_energy() * EV_TO_KCAL_MOL)
            fd[i, k] = -(e[0] - e[1]) / (2 * h)
    atoms.positions = coords
    recomputed = atoms.get_forces() * EV_TO_KCAL_MOL
    return {
        "max_abs_fd_minus_stored_kcal_mol_A": float(np.abs(fd - forces).max()),
        "rms_stored_force_kcal_mol_A": float(np.sqrt((forces ** 2).mean())),
        "max_abs_recomputed_minus_stored_kcal_mol_A": float(np.abs(recomputed - forces).max()),
        "abs_recomputed_minus_stored_energy_kcal_mol": float(
            abs(atoms.get_potential_energy() * EV_TO_KCAL_MOL - energy)),
    }


def summarize(path: Path, fd_frame: int | None = 0) -> dict:
    """Summary statistics of one generated file (used for the data card and the tests)."""
    with np.load(path, allow_pickle=False) as d:
        z, x, e, f = d["nuclear_charges"], d["coords"], d["energies"], d["forces"]
        temps = d["kinetic_temperatures"]
        accuracy = float(json.loads(str(d["metadata"]))["config"]["accuracy"])
    dx = np.sqrt(((x[1:] - x[:-1]) ** 2).sum(-1).mean(-1))  # RMS displacement, no alignment
    s = {
        "file": str(path), "n_frames": int(len(e)), "n_atoms": int(len(z)),
        "all_finite": bool(np.isfinite(e).all() and np.isfinite(f).all() and np.isfinite(x).all()),
        "energy_mean_kcal_mol": float(e.mean()), "energy_std_kcal_mol": float(e.std()),
        "force_rms_kcal_mol_A": float(np.sqrt((f ** 2).mean())),
        "kinetic_temperature_mean_K": float(temps.mean()),
        "kinetic_temperature_std_K": float(temps.std()),
        "energy_autocorr_lag1": lag_autocorrelation(e, 1),
        "energy_autocorr_lag2": lag_autocorrelation(e, 2),
        "force_autocorr_lag1": lag_autocorrelation(f, 1),
        "consecutive_frame_rms_displacement_A_min": float(dx.min()),
        "consecutive_frame_rms_displacement_A_mean": float(dx.mean()),
    }
    if fd_frame is not None:
        s["finite_difference_check_frame"] = fd_frame
        s.update(finite_difference_error(z, x[fd_frame], float(e[fd_frame]), f[fd_frame],
                                         accuracy=accuracy))
    return s


# -------------------------------------------------------------------------------------- CLI
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--molecule", required=True, choices=sorted(GEOMETRIES))
    p.add_argument("--out-dir", default=str(DATA_DIR),
                   help="directory for xtb_<molecule>_{train,test}.npz (and checkpoints)")
    p.add_argument("--splits", default="train,test",
                   help="comma-separated subset of train,test to generate")
    p.add_argument("--seed", type=int, default=0,
                   help="base seed; split s uses numpy.random.default_rng([seed, s]), "
                        "s = 0 (train) / 1 (test)")
    p.add_argument("--temperature", type=float, default=500.0, help="thermostat target, K")
    p.add_argument("--timestep", type=float, default=0.5, help="MD time step, fs")
    p.add_argument("--friction", type=float, default=0.05,
                   help="Langevin friction, 1/fs (0.05/fs: 20 fs velocity relaxation time)")
    p.add_argument("--stride", type=int, default=40,
                   help="MD steps between saved frames (40 x 0.5 fs = 20 fs)")
    p.add_argument("--n-train", type=int, default=1000, help="frames in the train trajectory")
    p.add_argument("--n-test", type=int, default=500, help="frames in the test trajectory")
    p.add_argument("--equil-steps", type=int, default=1000,
                   help="unsaved equilibration steps at the start of each trajectory")
    p.add_argument("--accuracy", type=float, default=1.0,
                   help="tblite numerical accuracy (smaller = tighter SCF, slower)")
    p.add_argument("--fmax", type=float, default=0.05,
                   help="BFGS convergence of the initial relaxation, eV/A")
    p.add_argument("--checkpoint-every", type=int, default=50, help="frames between checkpoints")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--overwrite", action="store_true", help="regenerate existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--verify-only", action="store_true",
                   help="do not generate; print summary statistics (JSON) of existing outputs, "
                        "including a finite-difference force check on frame 0")
    args = p.parse_args(argv)
    args.splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    bad = [s for s in args.splits if s not in SPLITS]
    if bad:
        p.error(f"unknown split(s) {bad}; choose from {sorted(SPLITS)}")
    for name in ("stride", "n_train", "n_test", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.equil_steps < 0:
        p.error("--equil-steps must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    if args.verify_only:
        report = [summarize(output_path(out_dir, args.molecule, s)) for s in args.splits]
        print(json.dumps(report, indent=2))
        return 0

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    atoms = starting_atoms(args.molecule)
    n_opt = relax(atoms, fmax=args.fmax, accuracy=args.accuracy)
    print(f"relaxed {args.molecule} with GFN2-xTB BFGS in {n_opt} steps: "
          f"E = {atoms.get_potential_energy() * EV_TO_KCAL_MOL:.3f} kcal/mol")
    relaxed = atoms.get_positions().copy()
    for split in args.splits:
        run_split(args, split, relaxed)
    print(f"total wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
