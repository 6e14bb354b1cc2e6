"""EDM's sample-quality metrics for molecules with hydrogens: stability, validity, uniqueness.

Reproduces the protocol of Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule
Generation in 3D" (EDM), from ehoogeboom/e3_diffusion_for_molecules:

* ``qm9/bond_analyze.py``: bond lengths ``bonds1/2/3`` (pm), margins 10/5/3 pm,
  ``get_bond_order`` and ``allowed_bonds`` (only the H, C, N, O, F entries are kept here);
* ``qm9/analyze.py::check_stability``: an atom is stable when the sum of its bond orders
  equals its allowed valence, a molecule when all its atoms are;
* ``qm9/rdkit_functions.py``: ``build_molecule`` / ``mol2smiles`` /
  ``BasicMolecularMetrics.compute_validity`` (valid = RDKit sanitizes the molecule built
  from those bonds; its SMILES is that of the largest fragment, so a disconnected
  molecule still counts as valid) and ``compute_uniqueness``.

A molecule is a pair ``(z, pos)``: atomic numbers [n] and positions [n, 3] in Å
(numpy arrays, lists or CPU/GPU torch tensors).
"""

from __future__ import annotations

import numpy as np

ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}
"""Atomic number -> symbol of the elements the tables cover."""

# EDM qm9/bond_analyze.py, restricted to H, C, N, O, F; lengths in pm.
BONDS1 = {
    "H": {"H": 74, "C": 109, "N": 101, "O": 96, "F": 92},
    "C": {"H": 109, "C": 154, "N": 147, "O": 143, "F": 135},
    "N": {"H": 101, "C": 147, "N": 145, "O": 140, "F": 136},
    "O": {"H": 96, "C": 143, "N": 140, "O": 148, "F": 142},
    "F": {"H": 92, "C": 135, "N": 136, "O": 142, "F": 142},
}
BONDS2 = {
    "C": {"C": 134, "N": 129, "O": 120},
    "N": {"C": 129, "N": 125, "O": 121},
    "O": {"C": 120, "N": 121, "O": 121},
}
BONDS3 = {
    "C": {"C": 120, "N": 116, "O": 113},
    "N": {"C": 116, "N": 110},
    "O": {"C": 113},
}
MARGIN1, MARGIN2, MARGIN3 = 10, 5, 3
ALLOWED_BONDS = {"H": 1, "C": 4, "N": 3, "O": 2, "F": 1}

_N_Z = max(ELEMENTS) + 1


def _threshold_table(bonds: dict, margin: float) -> np.ndarray:
    """float64 [10, 10] bond-length thresholds in pm by atomic numbers; -inf where no bond."""
    table = np.full((_N_Z, _N_Z), -np.inf)
    z_of = {symbol: z for z, symbol in ELEMENTS.items()}
    for first, row in bonds.items():
        for second, length in row.items():
            table[z_of[first], z_of[second]] = length + margin
    return table


_T1 = _threshold_table(BONDS1, MARGIN1)
_T2 = _threshold_table(BONDS2, MARGIN2)
_T3 = _threshold_table(BONDS3, MARGIN3)
_VALENCE = np.full(_N_Z, -1, dtype=np.int64)
for _z, _symbol in ELEMENTS.items():
    _VALENCE[_z] = ALLOWED_BONDS[_symbol]


def _to_numpy(array) -> np.ndarray:
    """A numpy array from a numpy array, list or (possibly GPU) torch tensor."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _checked_molecule(molecule) -> tuple[np.ndarray, np.ndarray]:
    """``(z, pos)`` as int64 [n] and float64 [n, 3]; raises ValueError on bad input."""
    z, pos = (_to_numpy(part) for part in molecule)
    if z.ndim != 1 or len(z) == 0 or pos.shape != (len(z), 3):
        raise ValueError(f"a molecule needs z [n>0] and pos [n, 3], got {z.shape}, {pos.shape}")
    z = z.astype(np.int64)
    unknown = sorted(set(z.tolist()) - set(ELEMENTS))
    if unknown:
        raise ValueError(f"atomic numbers {unknown} are not among H, C, N, O, F")
    return z, pos.astype(np.float64)


def _checked_molecules(molecules) -> list[tuple[np.ndarray, np.ndarray]]:
    """All molecules checked with :func:`_checked_molecule`; raises ValueError if empty."""
    checked = [_checked_molecule(molecule) for molecule in molecules]
    if not checked:
        raise ValueError("need at least one molecule")
    return checked


def bond_orders(z: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """int64 [n, n] EDM bond orders (0 none, 1 single, 2 double, 3 triple) of one molecule.

    Args:
        z: int [n] atomic numbers of H, C, N, O, F.
        pos: float [n, 3] positions in Å.
    """
    z, pos = _checked_molecule((z, pos))
    distance = 100.0 * np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)  # pm
    pair = (z[:, None], z[None, :])
    orders = np.where(
        distance < _T1[pair],
        np.where(distance < _T2[pair], np.where(distance < _T3[pair], 3, 2), 1),
        0,
    )
    np.fill_diagonal(orders, 0)
    return orders


def _stable_atoms(z: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """bool [n]: whether each atom's bond-order sum equals its allowed valence."""
    return orders.sum(axis=1) == _VALENCE[z]


def _stability(zs, orders) -> tuple[float, float]:
    """Fractions of stable atoms (over all atoms) and of fully stable molecules."""
    stable = [_stable_atoms(z, o) for z, o in zip(zs, orders)]
    n_atoms = sum(len(s) for s in stable)
    atom_fraction = sum(int(s.sum()) for s in stable) / n_atoms
    return atom_fraction, sum(bool(s.all()) for s in stable) / len(stable)


def atom_stability_and_molecule_stability(molecules) -> tuple[float, float]:
    """EDM's atom and molecule stability of a list of ``(z, pos)`` molecules.

    Returns:
        (stable atoms / all atoms, molecules whose atoms are all stable / molecules).
    """
    checked = _checked_molecules(molecules)
    return _stability([z for z, _ in checked], [bond_orders(z, p) for z, p in checked])


def _valid_smiles(z: np.ndarray, orders: np.ndarray) -> str | None:
    """SMILES of the largest fragment if RDKit sanitizes the molecule, else None (EDM)."""
    from rdkit import Chem

    bond_types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    mol = Chem.RWMol()
    for atomic_number in z:
        mol.AddAtom(Chem.Atom(ELEMENTS[int(atomic_number)]))
    for i, j in zip(*np.nonzero(np.tril(orders, -1))):
        mol.AddBond(int(i), int(j), bond_types[int(orders[i, j])])
    try:
        Chem.SanitizeMol(mol)
    except ValueError:
        return None
    fragments = Chem.GetMolFrags(mol, asMols=True)
    return Chem.MolToSmiles(max(fragments, key=lambda fragment: fragment.GetNumAtoms()))


def _validity(zs, orders) -> tuple[float, list[str]]:
    """Fraction of molecules RDKit sanitizes, and the SMILES of those valid ones."""
    from rdkit import rdBase

    with rdBase.BlockLogs():  # one sanitization error line per invalid molecule otherwise
        smiles = [_valid_smiles(z, o) for z, o in zip(zs, orders)]
    valid = [s for s in smiles if s is not None]
    return len(valid) / len(smiles), valid


def rdkit_validity(molecules) -> tuple[float, list[str]]:
    """EDM's RDKit validity of a list of ``(z, pos)`` molecules.

    Builds an RDKit molecule with every atom and the :func:`bond_orders` bonds; it is
    valid when ``Chem.SanitizeMol`` succeeds (RDKit may add implicit hydrogens to
    under-bonded atoms, as in EDM). Hydrogens stay explicit atoms, so the SMILES
    (of the largest fragment, canonical) show them as ``[H]``, as EDM's do.

    Returns:
        (valid / all, canonical SMILES of the valid molecules in input order).
    """
    checked = _checked_molecules(molecules)
    return _validity([z for z, _ in checked], [bond_orders(z, p) for z, p in checked])


def uniqueness(smiles_of_valid: list[str]) -> float:
    """Distinct SMILES / SMILES (EDM's ``compute_uniqueness``); 0.0 when there are none."""
    if not smiles_of_valid:
        return 0.0
    return len(set(smiles_of_valid)) / len(smiles_of_valid)


def sample_quality(molecules) -> dict:
    """All EDM sample-quality metrics of a list of ``(z, pos)`` molecules.

    Returns:
        ``atom_stability``, ``molecule_stability``, ``validity``, ``uniqueness``
        (fractions in [0, 1]) and ``n_samples``.
    """
    checked = _checked_molecules(molecules)
    zs = [z for z, _ in checked]
    orders = [bond_orders(z, p) for z, p in checked]
    atom_stability, molecule_stability = _stability(zs, orders)
    validity, valid = _validity(zs, orders)
    return {
        "atom_stability": atom_stability,
        "molecule_stability": molecule_stability,
        "validity": validity,
        "uniqueness": uniqueness(valid),
        "n_samples": len(checked),
    }
