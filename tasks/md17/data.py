"""MD17-family data: real rMD17 and original MD17 files, and the embedded GFN2-xTB frames.

Every source is read into :class:`Frames` (one molecule, many frames) in rMD17's units:
positions in Å, energies in kcal/mol, forces in kcal/mol/Å.

Layouts understood:

- rMD17 split files (as in its NumPy distribution's per-split form and in ``../shared``):
  ``rmd17_<mol>_train_01.npz`` / ``rmd17_<mol>_test_01.npz`` with keys ``nuclear_charges``,
  ``coords``, ``energies``, ``forces`` — 1,000 frames each (official split 01).
- the full rMD17 archive (figshare 12672038, ``rmd17.tar.bz2``): ``npz_data/rmd17_<mol>.npz``
  (100,000 frames) with ``splits/index_{train,test}_01.csv``; split files are cut from it.
- original MD17 (sGDML): ``md17_<mol>.npz`` with keys ``z``, ``R``, ``E`` ([n, 1]), ``F``.
- the embedded xTB frames: ``xtb_<mol>_{train,test}.npz`` in rMD17's layout (see data/README.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from equibench.datacache import DataMissingError, cache_dir, locate

RMD17_ARCHIVE_URL = "https://figshare.com/ndownloader/articles/12672038/versions/3"
MD17_URL = "http://www.quantum-machine.org/gdml/data/npz/{name}"
# sha256 of the official split-01 files as distributed (checked whenever these files are read)
RMD17_SPLIT_SHA256 = {
    "rmd17_ethanol_train_01.npz": "096946747b8d9dcfa042b44f8debbd3da387dfe1586b659e3be789cc4927316a",
    "rmd17_ethanol_test_01.npz": "c3594a0f93d5992e02f9eb671392fb2e5021b3fa4f902417886966d1e4f64e1e",
    "rmd17_aspirin_train_01.npz": "d460f0e43a1a9411b55cdcd9cdbeb9466ae62851ac91392516ab88e4ebc68143",
    "rmd17_aspirin_test_01.npz": "a3c3b61e782d01e6dd649a126004903f7873e8e7ee5034135abfdb8873be711d",
}


@dataclass(frozen=True)
class Frames:
    """Frames of one molecule: ``z`` [n_atoms] atomic numbers, ``pos`` [n, n_atoms, 3] Å,
    ``energy`` [n] kcal/mol, ``forces`` [n, n_atoms, 3] kcal/mol/Å."""

    z: np.ndarray
    pos: np.ndarray
    energy: np.ndarray
    forces: np.ndarray

    def __post_init__(self):
        n, atoms = self.pos.shape[:2]
        if self.pos.shape != (n, atoms, 3) or self.forces.shape != self.pos.shape \
                or self.energy.shape != (n,) or self.z.shape != (atoms,):
            raise ValueError(f"inconsistent frame arrays: z {self.z.shape}, pos {self.pos.shape}, "
                             f"energy {self.energy.shape}, forces {self.forces.shape}")
        for name in ("pos", "energy", "forces"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} contains NaN or inf values")

    def __len__(self) -> int:
        return len(self.energy)

    def take(self, index: np.ndarray) -> "Frames":
        return Frames(self.z, self.pos[index], self.energy[index], self.forces[index])


def read_rmd17_layout(path: Path) -> Frames:
    """Read an npz in rMD17's key layout (rMD17 split files and the embedded xTB files)."""
    with np.load(path) as data:
        missing = {"nuclear_charges", "coords", "energies", "forces"} - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks keys {sorted(missing)}; expected rMD17's npz layout")
        return Frames(data["nuclear_charges"].astype(np.int64), data["coords"].astype(np.float64),
                      data["energies"].astype(np.float64).reshape(-1), data["forces"].astype(np.float64))


def read_md17_layout(path: Path) -> Frames:
    """Read an original MD17 (sGDML) npz: keys ``z``, ``R``, ``E``, ``F``."""
    with np.load(path) as data:
        missing = {"z", "R", "E", "F"} - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks keys {sorted(missing)}; expected the sGDML MD17 npz layout")
        return Frames(data["z"].astype(np.int64), data["R"].astype(np.float64),
                      data["E"].astype(np.float64).reshape(-1), data["F"].astype(np.float64))


def load_xtb(file_stem: str) -> tuple[Frames, Frames]:
    """The embedded GFN2-xTB train pool and test frames shipped in ``tasks/md17/data``."""
    folder = resources.files(__package__).joinpath("data")
    parts = []
    for split in ("train", "test"):
        entry = folder.joinpath(f"{file_stem}_{split}.npz")
        if not entry.is_file():
            raise DataMissingError(f"embedded file {file_stem}_{split}.npz is missing from the installed package; "
                                   "regenerate it with tasks/md17/generate_xtb.py or reinstall equibench")
        with resources.as_file(entry) as path:
            parts.append(read_rmd17_layout(path))
    return parts[0], parts[1]


def load_rmd17(molecule: str, data_dir: str | None) -> tuple[Frames, Frames]:
    """rMD17 official split 01: (1,000 training frames, 1,000 test frames)."""
    search = [Path(data_dir)] if data_dir else []
    cache = cache_dir("rmd17")
    names = [f"rmd17_{molecule}_{split}_01.npz" for split in ("train", "test")]
    if not all(any((f / n).is_file() for f in [*search, cache]) for n in names):
        _cut_split_files_from_archive(molecule, search + [cache], cache)
    parts = []
    for name in names:
        path = locate(name, search, None, RMD17_SPLIT_SHA256.get(name), cache=cache)
        parts.append(read_rmd17_layout(path))
    return parts[0], parts[1]


def _cut_split_files_from_archive(molecule: str, folders: list[Path], cache: Path) -> None:
    """Write ``rmd17_<mol>_{train,test}_01.npz`` into ``cache`` from the full rMD17 archive layout."""
    for folder in folders:
        full = _first_file(folder, [f"rmd17_{molecule}.npz", f"npz_data/rmd17_{molecule}.npz",
                                    f"rmd17/npz_data/rmd17_{molecule}.npz"])
        split_dir = _first_file(folder, ["index_train_01.csv", "splits/index_train_01.csv",
                                         "rmd17/splits/index_train_01.csv"])
        if full is None or split_dir is None:
            continue
        with np.load(full) as data:
            arrays = {k: data[k] for k in data.files}
        for split in ("train", "test"):
            index = np.loadtxt(split_dir.parent / f"index_{split}_01.csv", dtype=np.int64)
            np.savez(cache / f"rmd17_{molecule}_{split}_01.npz", nuclear_charges=arrays["nuclear_charges"],
                     **{k: v[index] for k, v in arrays.items() if k != "nuclear_charges"})
        return
    raise DataMissingError(
        f"rMD17 files for {molecule!r} not found. Either put rmd17_{molecule}_train_01.npz and "
        f"rmd17_{molecule}_test_01.npz, or the extracted archive (npz_data/rmd17_{molecule}.npz and "
        f"splits/index_train_01.csv, index_test_01.csv), in a folder passed as --data-dir or in {cache}. "
        f"The archive rmd17.tar.bz2 is at {RMD17_ARCHIVE_URL} (figshare article 12672038).")


def _first_file(folder: Path, candidates: list[str]) -> Path | None:
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def load_md17(molecule: str, data_dir: str | None, download: bool = False) -> Frames:
    """Original MD17 (sGDML npz): all frames of one molecule."""
    name = f"md17_{molecule}.npz"
    path = locate(name, [Path(data_dir)] if data_dir else [], MD17_URL.format(name=name), None,
                  download=download, cache=cache_dir("md17"))
    return read_md17_layout(path)

