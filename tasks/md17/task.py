"""The MD17 force-field task: predict energy (invariant) and forces (vectors) of molecular frames."""
from __future__ import annotations

import difflib
from collections.abc import Iterator

import numpy as np
import torch

from equibench.rotations import random_rotations
from equibench.task import Example, OutputSpec, PointCloudGeometry, Task, read_card

from .data import Frames, load_md17, load_rmd17, load_xtb

CARD = read_card(__package__)
MEV_PER_KCAL_MOL = 43.364104  # 1 kcal/mol = 0.043364104 eV


class MD17Task(Task):
    """MD17 force field: energy + forces of one molecule's MD frames (rMD17, MD17, or embedded xTB)."""

    name = CARD["name"]
    version = CARD["version"]
    description = CARD["description"]
    geometry = PointCloudGeometry(vector_fields=("pos",))
    atom_types = tuple(CARD["atom_types"])
    node_feature_dim = len(CARD["atom_types"])
    primary_metric = "forces_mae"
    card = CARD

    def __init__(self, dataset: str | None = None, data_dir: str | None = None, subset: int | None = None,
                 download: bool = False):
        dataset = dataset or CARD["default_dataset"]
        if dataset not in CARD["datasets"]:
            close = difflib.get_close_matches(dataset, list(CARD["datasets"]), n=3)
            raise ValueError(f"md17 has no dataset {dataset!r}." + (f" Did you mean: {', '.join(close)}?" if close
                             else "") + f" Available: {', '.join(CARD['datasets'])}")
        super().__init__(dataset, data_dir, subset, download)
        pool, test = self._load(CARD["datasets"][dataset])
        self._split = self._make_split(len(pool), len(test))
        train_index = self._split["train"][:subset] if subset else self._split["train"]
        train = pool.take(train_index)
        self.energy_mean = float(train.energy.mean())
        self.scale = float(np.sqrt((train.forces**2).mean()))  # kcal/mol/Å, also the energy unit
        weights = CARD["loss_weights"]
        self.outputs = (
            OutputSpec("energy", "scalar", "graph", (), weights["energy"], unit=f"{self.scale:.4g} kcal/mol"),
            OutputSpec("forces", "vector", "node", (3,), weights["forces"], unit=f"{self.scale:.4g} kcal/mol/Å"),
        )
        self.z = torch.as_tensor(train.z)
        self.one_hot = self._one_hot(train.z)
        self._tensors = {"train": self._to_tensors(train), "val": self._to_tensors(pool.take(self._split["val"])),
                         "test": self._to_tensors(test)}

    # --- data -------------------------------------------------------------------------------
    def _load(self, source: dict) -> tuple[Frames, Frames]:
        kind, molecule = source["kind"], source["molecule"]
        if kind == "xtb":
            return load_xtb(source["file"])
        if kind == "rmd17":
            return load_rmd17(molecule, self.data_dir)
        frames = load_md17(molecule, self.data_dir, download=self.download)
        order = np.random.default_rng(CARD["split"]["seed"]).permutation(len(frames))
        n_pool = CARD["split"]["train"] + CARD["split"]["val"]
        return frames.take(order[:n_pool]), frames.take(order[n_pool:n_pool + CARD["split"]["md17_test"]])

    @staticmethod
    def _make_split(n_pool: int, n_test: int) -> dict[str, np.ndarray]:
        n_train, n_val = CARD["split"]["train"], CARD["split"]["val"]
        if n_pool < n_train + n_val:
            raise ValueError(f"the training file has {n_pool} frames; md17 needs {n_train + n_val}")
        order = np.random.default_rng(CARD["split"]["seed"]).permutation(n_pool)
        return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
                "test": np.arange(n_test)}

    def split_indices(self) -> dict[str, np.ndarray]:
        return self._split

    def _one_hot(self, z: np.ndarray) -> torch.Tensor:
        unknown = sorted(set(z.tolist()) - set(self.atom_types))
        if unknown:
            raise ValueError(f"atomic numbers {unknown} are not among md17's atom types {self.atom_types}")
        index = torch.as_tensor([self.atom_types.index(int(v)) for v in z])
        return torch.nn.functional.one_hot(index, len(self.atom_types)).float()

    def _to_tensors(self, frames: Frames) -> dict[str, torch.Tensor]:
        """Centred positions [n, A, 3] Å and normalised energies [n] / forces [n, A, 3], float32."""
        pos = frames.pos - frames.pos.mean(axis=1, keepdims=True)
        return {"pos": torch.as_tensor(pos, dtype=torch.float32),
                "energy": torch.as_tensor((frames.energy - self.energy_mean) / self.scale, dtype=torch.float32),
                "forces": torch.as_tensor(frames.forces / self.scale, dtype=torch.float32)}

    def _example(self, split: str, index: torch.Tensor, rotations: torch.Tensor | None = None) -> Example:
        from torch_geometric.data import Batch

        data = self._tensors[split]
        pos, forces = data["pos"][index], data["forces"][index]  # [B, A, 3]
        if rotations is not None:
            pos = torch.einsum("bij,baj->bai", rotations, pos)
            forces = torch.einsum("bij,baj->bai", rotations, forces)
        b, atoms = pos.shape[:2]
        inputs = Batch(x=self.one_hot.repeat(b, 1), z=self.z.repeat(b), pos=pos.reshape(b * atoms, 3),
                       batch=torch.arange(b).repeat_interleave(atoms), ptr=torch.arange(b + 1) * atoms)
        return Example(inputs, {"energy": data["energy"][index], "forces": forces.reshape(b * atoms, 3)}, b)

    def train_batch(self, batch_size: int, generator: torch.Generator, augment: bool) -> Example:
        index = torch.randint(len(self._tensors["train"]["energy"]), (batch_size,), generator=generator)
        rotations = random_rotations(batch_size, generator) if augment else None
        return self._example("train", index, rotations)

    def heldout_batches(self, split: str, batch_size: int) -> Iterator[Example]:
        n = len(self._tensors[split]["energy"])
        for start in range(0, n, batch_size):
            yield self._example(split, torch.arange(start, min(start + batch_size, n)))

    def probe_example(self) -> Example:
        return self._example("test", self.probe_indices(len(self._tensors["test"]["energy"])))

    # --- metrics ----------------------------------------------------------------------------
    def metrics(self, predictions, example):
        to_mev = self.scale * MEV_PER_KCAL_MOL
        energy_err = (predictions["energy"] - example.targets["energy"]).abs()
        force_err = (predictions["forces"] - example.targets["forces"]).abs()
        return {"energy_mae": (float(energy_err.sum()) * to_mev, energy_err.numel()),
                "forces_mae": (float(force_err.sum()) * to_mev, force_err.numel())}
