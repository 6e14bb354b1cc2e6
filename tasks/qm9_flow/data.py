"""QM9 molecules as flat arrays, their loaders and the EDM train/valid/test split.

Two sources give the same :class:`QM9Molecules` (the 130,831 molecules left after
removing the 3,054 "uncharacterized" ones, sorted by QM9 index):

* :func:`load_qm9pack` parses the CSV files of the ``qm9pack`` PyPI package once and
  caches them as an ``.npz`` file that loads in well under a second afterwards;
* :func:`load_gdb9_raw` reads the raw MoleculeNet / PyG files ``gdb9.sdf``,
  ``gdb9.sdf.csv`` and ``uncharacterized.txt`` that many users already have.

:func:`edm_split` reproduces the split of Hoogeboom et al. 2022 (EDM), taken from
``qm9/data/prepare/qm9.py::gen_splits_gdb9`` in ehoogeboom/e3_diffusion_for_molecules.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from equibench.datacache import cache_dir as equibench_cache_dir

QM9_N_TOTAL = 133_885
"""Molecules in QM9 (GDB-9) before removing the uncharacterized ones."""
QM9_N_UNCHARACTERIZED = 3_054
QM9_N_CHARACTERIZED = QM9_N_TOTAL - QM9_N_UNCHARACTERIZED  # 130,831

SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

QM9PACK_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
QM9PACK_COLUMNS = ("Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang")
RAW_FILES = ("gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt")
CACHE_NAME = "qm9pack_v1.npz"

EDM_N_TRAIN = 100_000
EDM_SEED = 0


@dataclass(frozen=True)
class QM9Molecules:
    """Molecules stored as flat, concatenated arrays.

    Attributes:
        z: uint8 [total_atoms], atomic numbers (H=1, C=6, N=7, O=8, F=9).
        pos: float32 [total_atoms, 3], Cartesian coordinates in Å.
        ptr: int64 [n_mol + 1], atoms of molecule i are ``ptr[i]:ptr[i + 1]``.
        index: int64 [n_mol], QM9 index (1..133885) of each molecule.
        smiles: object [n_mol], the source's SMILES string of each molecule
            (qm9pack: the GDB-17 SMILES of the QM9 xyz files; raw files: RDKit
            SMILES of the SDF bond table).
    """

    z: np.ndarray
    pos: np.ndarray
    ptr: np.ndarray
    index: np.ndarray
    smiles: np.ndarray

    def __post_init__(self):
        _check_layout(self.z, self.pos, self.ptr, self.index, self.smiles)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def n_atoms(self) -> np.ndarray:
        """int64 [n_mol], number of atoms of each molecule."""
        return np.diff(self.ptr)

    def molecule(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Atomic numbers uint8 [n] and positions float32 [n, 3] (Å) of molecule ``i``."""
        i = int(_as_indices(i, len(self))[0])
        start, stop = self.ptr[i], self.ptr[i + 1]
        return self.z[start:stop], self.pos[start:stop]

    def subset(self, indices) -> QM9Molecules:
        """New :class:`QM9Molecules` holding molecules ``indices`` (positions, in that order)."""
        idx = _as_indices(indices, len(self))
        atoms, counts = _atom_indices(self.ptr, idx)
        return QM9Molecules(
            z=self.z[atoms],
            pos=self.pos[atoms],
            ptr=_counts_to_ptr(counts),
            index=self.index[idx],
            smiles=self.smiles[idx],
        )

    def gather(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch of molecules ``indices`` built without a Python loop over molecules.

        Returns:
            z: int64 [n_atoms], atomic numbers.
            pos: float32 [n_atoms, 3], positions in Å.
            batch: int64 [n_atoms], position in ``indices`` of each atom's molecule.
        """
        idx = _as_indices(indices, len(self))
        atoms, counts = _atom_indices(self.ptr, idx)
        batch = np.repeat(np.arange(len(idx), dtype=np.int64), counts)
        z = torch.from_numpy(self.z[atoms]).long()
        return z, torch.from_numpy(self.pos[atoms]), torch.from_numpy(batch)

    def sha256(self) -> str:
        """Hex sha256 of all arrays (names, dtypes, shapes and bytes)."""
        return _arrays_sha256(_to_arrays(self))


def _check_layout(z, pos, ptr, index, smiles) -> None:
    """Raise ValueError unless the flat arrays describe one consistent set of molecules."""
    n_mol = len(index)
    if z.ndim != 1 or pos.shape != (len(z), 3):
        raise ValueError(f"need z [N] and pos [N, 3], got {z.shape} and {pos.shape}")
    if ptr.shape != (n_mol + 1,) or len(smiles) != n_mol:
        raise ValueError(
            f"need ptr [{n_mol + 1}] and smiles [{n_mol}] for {n_mol} molecules, "
            f"got {ptr.shape} and {len(smiles)}"
        )
    if ptr[0] != 0 or ptr[-1] != len(z) or np.any(np.diff(ptr) < 0):
        raise ValueError("ptr must start at 0, never decrease and end at len(z)")


def _as_indices(indices, n: int) -> np.ndarray:
    """int64 [k] molecule positions from an int, list, numpy array or tensor; range-checked."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    idx = np.atleast_1d(np.asarray(indices))
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"indices must be a 1-D array of integers, got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"molecule indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64, copy=False)


def _atom_indices(ptr: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat atom positions int64 [sum counts] of molecules ``idx``, and their atom counts [k]."""
    starts = ptr[idx]
    counts = ptr[idx + 1] - starts
    out_ptr = _counts_to_ptr(counts)
    shift = np.repeat(starts - out_ptr[:-1], counts)
    return np.arange(out_ptr[-1], dtype=np.int64) + shift, counts


def _counts_to_ptr(counts: np.ndarray) -> np.ndarray:
    """Offsets int64 [k + 1] from atom counts [k]."""
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _to_arrays(mols: QM9Molecules) -> dict[str, np.ndarray]:
    """The npz representation: numeric arrays plus SMILES as one newline-joined utf-8 blob."""
    blob = "\n".join(mols.smiles).encode("utf-8")
    return {
        "z": mols.z,
        "pos": mols.pos,
        "ptr": mols.ptr,
        "index": mols.index,
        "smiles_utf8": np.frombuffer(blob, dtype=np.uint8),
    }


def _from_arrays(arrays) -> QM9Molecules:
    """Inverse of :func:`_to_arrays`."""
    n_mol = len(arrays["index"])
    text = arrays["smiles_utf8"].tobytes().decode("utf-8")
    smiles = np.array(text.split("\n") if n_mol else [], dtype=object)
    return QM9Molecules(
        z=arrays["z"], pos=arrays["pos"], ptr=arrays["ptr"], index=arrays["index"], smiles=smiles
    )


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Hex sha256 over sorted names, dtypes, shapes and C-ordered bytes of ``arrays``."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- qm9pack


def qm9pack_data_dir() -> Path:
    """Folder holding qm9pack's CSV files (found without importing the package)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "QM9 needs the qm9pack package: run `pip install qm9pack`, or pass the folder "
            "holding gdb9.sdf, gdb9.sdf.csv and uncharacterized.txt to load_gdb9_raw(folder)."
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def load_qm9pack(cache_dir: str | os.PathLike | None = None) -> QM9Molecules:
    """The 130,831 characterized QM9 molecules from qm9pack, sorted by QM9 index.

    The first call parses qm9pack's CSVs (tens of seconds) and writes ``qm9pack_v1.npz``
    under ``cache_dir`` (default ``$EQUIBENCH_DATA/qm9``, see :func:`equibench.datacache.cache_dir`); later calls read that file,
    checking it against the sha256 stored inside it.
    """
    path = Path(cache_dir or equibench_cache_dir("qm9")) / CACHE_NAME
    if path.exists():
        return read_cache(path)
    mols = parse_qm9pack_csvs(_qm9pack_csv_paths())
    _check_characterized_count(mols)
    write_cache(mols, path)
    return mols


def _qm9pack_csv_paths() -> list[Path]:
    """Paths of qm9pack's three CSV parts; raises FileNotFoundError naming a missing one."""
    folder = qm9pack_data_dir()
    paths = [folder / name for name in QM9PACK_FILES]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"qm9pack is installed but {path} is missing; reinstall it with "
                "`pip install --force-reinstall qm9pack`."
            )
    return paths


def parse_qm9pack_csvs(paths) -> QM9Molecules:
    """Parse qm9pack-format CSV files (columns Index, SMILES, N_atoms, Elements, XYZ_Ang).

    Elements and coordinates are parsed with whole-column string operations, never per atom.
    """
    frame = pd.concat(
        [pd.read_csv(path, usecols=list(QM9PACK_COLUMNS)) for path in paths], ignore_index=True
    )
    frame = frame.sort_values("Index", kind="stable", ignore_index=True)
    if frame["Index"].duplicated().any():
        raise ValueError("qm9pack CSVs list some QM9 index more than once")
    n_atoms = frame["N_atoms"].to_numpy(np.int64)
    return QM9Molecules(
        z=_parse_elements(frame["Elements"], n_atoms),
        pos=_parse_coordinates(frame["XYZ_Ang"], n_atoms),
        ptr=_counts_to_ptr(n_atoms),
        index=frame["Index"].to_numpy(np.int64),
        smiles=frame["SMILES"].to_numpy(dtype=object),
    )


def _parse_elements(column: pd.Series, n_atoms: np.ndarray) -> np.ndarray:
    """uint8 [sum n_atoms] atomic numbers from strings like ``"['C','H','H']"``."""
    if not np.array_equal(column.str.count(",").to_numpy() + 1, n_atoms):
        raise ValueError("qm9pack Elements column disagrees with N_atoms")
    symbols = pd.Series(",".join(column.str.slice(1, -1)).replace("'", "").split(","))
    z = symbols.map(SYMBOL_TO_Z)
    if z.isna().any():
        raise ValueError(f"unknown element symbols in qm9pack: {sorted(set(symbols[z.isna()]))}")
    return z.to_numpy(np.uint8)


def _parse_coordinates(column: pd.Series, n_atoms: np.ndarray) -> np.ndarray:
    """float32 [sum n_atoms, 3] positions (Å) from strings like ``"[[x,y,z],[x,y,z]]"``."""
    if not np.array_equal(column.str.count(r"\],\[").to_numpy() + 1, n_atoms):
        raise ValueError("qm9pack XYZ_Ang column disagrees with N_atoms")
    text = ",".join(column.str.slice(2, -2)).replace("],[", ",")
    values = np.fromstring(text, dtype=np.float64, sep=",")
    if values.size != 3 * n_atoms.sum():
        raise ValueError("could not parse every coordinate of the qm9pack XYZ_Ang column")
    return values.reshape(-1, 3).astype(np.float32)


def _check_characterized_count(mols: QM9Molecules) -> None:
    """Raise ValueError unless ``mols`` holds exactly the 130,831 characterized molecules."""
    if len(mols) != QM9_N_CHARACTERIZED:
        raise ValueError(
            f"expected {QM9_N_CHARACTERIZED} characterized QM9 molecules, found {len(mols)}"
        )


def write_cache(mols: QM9Molecules, path: str | os.PathLike) -> None:
    """Write ``mols`` and their sha256 to ``path`` (uncompressed npz, atomic replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = _to_arrays(mols)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, sha256=np.array(_arrays_sha256(arrays)), **arrays)
    os.replace(tmp, path)


def read_cache(path: str | os.PathLike) -> QM9Molecules:
    """Read a cache written by :func:`write_cache`; raises ValueError if its sha256 differs."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "sha256"}
        stored = str(npz["sha256"])
    if _arrays_sha256(arrays) != stored:
        raise ValueError(f"QM9 cache {path} is corrupt (sha256 mismatch); delete it to rebuild")
    return _from_arrays(arrays)


# --------------------------------------------------------------------------- raw gdb9 files


def load_gdb9_raw(folder: str | os.PathLike) -> QM9Molecules:
    """QM9 from the raw MoleculeNet / PyG files, uncharacterized molecules removed.

    ``folder`` must hold ``gdb9.sdf`` (one record per molecule, in QM9 index order),
    ``gdb9.sdf.csv`` (its ``mol_id`` column, ``gdb_<index>``, gives each record's index)
    and ``uncharacterized.txt`` (the excluded molecules, figshare file 3195404).
    """
    sdf, csv, uncharacterized = _raw_paths(folder)
    mol_ids = pd.read_csv(csv, usecols=["mol_id"])["mol_id"].astype(str).to_numpy()
    index = _parse_mol_ids(mol_ids)
    keep = np.flatnonzero(~np.isin(index, read_uncharacterized(uncharacterized)))
    z, pos, n_atoms, smiles = _read_sdf_records(sdf, mol_ids, keep)
    mols = QM9Molecules(
        z=z, pos=pos, ptr=_counts_to_ptr(n_atoms), index=index[keep], smiles=smiles
    )
    return mols.subset(np.argsort(mols.index, kind="stable"))


def _raw_paths(folder) -> list[Path]:
    """Paths of the three raw files in ``folder``; raises FileNotFoundError naming a missing one."""
    folder = Path(folder)
    paths = [folder / name for name in RAW_FILES]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"raw QM9 file {path.name} not found in {folder.resolve()}; this folder needs "
                f"{', '.join(RAW_FILES)} (PyG's QM9 raw/ folder), or use load_qm9pack()."
            )
    return paths


def _parse_mol_ids(mol_ids: np.ndarray) -> np.ndarray:
    """int64 [n] QM9 indices from ids ``gdb_<index>``."""
    matches = [re.fullmatch(r"gdb_(\d+)", mol_id) for mol_id in mol_ids]
    bad = [mol_id for mol_id, match in zip(mol_ids, matches) if match is None]
    if bad:
        raise ValueError(f"gdb9.sdf.csv mol_id values must look like gdb_<index>, got {bad[:3]}")
    return np.array([int(match.group(1)) for match in matches], dtype=np.int64)


def read_uncharacterized(path: str | os.PathLike) -> np.ndarray:
    """int64 [k] QM9 indices listed in ``uncharacterized.txt``.

    As EDM's ``gen_splits_gdb9`` does, every line whose first field is an integer is a
    molecule (header, ruler and blank lines are skipped).
    """
    with open(path, encoding="utf-8") as handle:
        fields = [line.split() for line in handle]
    return np.array([int(f[0]) for f in fields if f and f[0].isdigit()], dtype=np.int64)


def _read_sdf_records(sdf: Path, mol_ids: np.ndarray, keep: np.ndarray):
    """Atomic numbers, positions (Å), atom counts and SMILES of SDF records ``keep``."""
    from rdkit import Chem, rdBase

    supplier = Chem.SDMolSupplier(str(sdf), removeHs=False, sanitize=False)
    if len(supplier) != len(mol_ids):
        raise ValueError(f"{sdf} has {len(supplier)} records but gdb9.sdf.csv has {len(mol_ids)}")
    keep_mask = np.zeros(len(mol_ids), dtype=bool)
    keep_mask[keep] = True
    z, pos, n_atoms, smiles = [], [], [], []
    with rdBase.BlockLogs():  # RDKit warns about some unsanitized records; they are kept as is
        for record, mol in enumerate(supplier):
            if not keep_mask[record]:
                continue
            if mol is None or mol.GetProp("_Name") != mol_ids[record]:
                raise ValueError(f"{sdf} record {record} is unreadable or is not {mol_ids[record]}")
            z.append([atom.GetAtomicNum() for atom in mol.GetAtoms()])
            pos.append(mol.GetConformer().GetPositions())
            n_atoms.append(mol.GetNumAtoms())
            smiles.append(Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False)))
    return (
        np.concatenate(z).astype(np.uint8),
        np.concatenate(pos).astype(np.float32),
        np.array(n_atoms, dtype=np.int64),
        np.array(smiles, dtype=object),
    )


# --------------------------------------------------------------------------- EDM split


def edm_split(n_molecules: int = QM9_N_CHARACTERIZED) -> dict[str, np.ndarray]:
    """EDM's train/valid/test split: positions into the characterized molecules sorted by index.

    Follows ``gen_splits_gdb9`` in EDM's ``qm9/data/prepare/qm9.py``: ``np.random.seed(0)``,
    ``perm = np.random.permutation(n)``, then the first 100,000 are train, the next
    ``n - 100,000 - int(0.1 n)`` valid (17,748) and the last ``int(0.1 n)`` test (13,083),
    each mapped through the sorted list of characterized molecules. EDM's
    ``process_xyz_files`` picks those positions from ``tarfile.getmembers()`` of the
    figshare archive and keeps archive order; this assumes (not checked offline) that the
    archive lists ``dsgdb9nsd_000001.xyz`` ... ``dsgdb9nsd_133885.xyz`` in index order,
    so each array is returned sorted. The global numpy RNG is left untouched
    (``RandomState(0)`` draws the same permutation as ``np.random.seed(0)``).

    Returns:
        ``{"train", "valid", "test"}`` -> int64 sorted positions in ``[0, n_molecules)``.
    """
    n_test = int(0.1 * n_molecules)
    n_valid = n_molecules - EDM_N_TRAIN - n_test
    if n_valid < 0:
        raise ValueError(f"EDM's split needs more than {EDM_N_TRAIN} molecules, got {n_molecules}")
    perm = np.random.RandomState(EDM_SEED).permutation(n_molecules)
    parts = np.split(perm.astype(np.int64), [EDM_N_TRAIN, EDM_N_TRAIN + n_valid])
    return {name: np.sort(part) for name, part in zip(("train", "valid", "test"), parts)}
