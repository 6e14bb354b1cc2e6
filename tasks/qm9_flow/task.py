"""The QM9 flow-matching task: learn the velocity field that carries noise to QM9 molecules."""
from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from equibench.datacache import cache_dir
from equibench.rotations import random_rotations
from equibench.scatter import centre_per_group
from equibench.task import Example, OutputSpec, PointCloudGeometry, Task, read_card

from .chemistry import sample_quality
from .data import QM9Molecules, edm_split, load_gdb9_raw, load_qm9pack
from .sampling import flow_batch, initial_noise, sample_molecules

CARD = read_card(__package__)


class QM9FlowTask(Task):
    """QM9 flow matching: velocity of positions (vectors) and atom types (invariant), EDM split."""

    name = CARD["name"]
    version = CARD["version"]
    description = CARD["description"]
    geometry = PointCloudGeometry(vector_fields=("pos",), graph_fields=("t",))
    graph_fields = ("t",)
    atom_types = tuple(CARD["atom_types"])
    node_feature_dim = len(CARD["atom_types"])
    primary_metric = "loss"
    card = CARD
    outputs = (
        OutputSpec("pos_velocity", "vector", "node", (3,), CARD["loss_weights"]["pos_velocity"], unit="Å"),
        OutputSpec("type_velocity", "scalar", "node", (len(CARD["atom_types"]),),
                   CARD["loss_weights"]["type_velocity"], unit="one-hot"),
    )

    def __init__(self, dataset: str | None = None, data_dir: str | None = None, subset: int | None = None,
                 download: bool = False, molecules: QM9Molecules | None = None,
                 split: dict[str, np.ndarray] | None = None):
        dataset = dataset or CARD["default_dataset"]
        if dataset not in CARD["datasets"]:
            raise ValueError(f"qm9_flow has no dataset {dataset!r}; available: {', '.join(CARD['datasets'])}")
        super().__init__(dataset, data_dir, subset, download)
        self.molecules = molecules if molecules is not None else self._load(CARD["datasets"][dataset]["kind"])
        edm = split if split is not None else edm_split(len(self.molecules))
        self._split = {"train": edm["train"][:subset] if subset else edm["train"],
                       "val": edm["valid"][:CARD["split"]["val_molecules"]],
                       "test": edm["test"][:CARD["split"]["test_molecules"]]}
        self._type_index = self._type_lookup()
        self._heldout = {name: self._fixed_noise_example(name, offset)
                         for offset, name in enumerate(("val", "test"))}

    def _load(self, kind: str) -> QM9Molecules:
        if kind == "gdb9_raw":
            if not self.data_dir:
                raise FileNotFoundError("dataset gdb9-raw reads gdb9.sdf, gdb9.sdf.csv and uncharacterized.txt "
                                        "from --data-dir; pass the folder that holds them")
            return load_gdb9_raw(self.data_dir)
        return load_qm9pack(cache_dir("qm9"))

    def _type_lookup(self) -> torch.Tensor:
        """Maps atomic number -> channel index (-1 for elements outside the task)."""
        lookup = torch.full((max(self.atom_types) + 1,), -1, dtype=torch.long)
        lookup[list(self.atom_types)] = torch.arange(len(self.atom_types))
        return lookup

    def split_indices(self) -> dict[str, np.ndarray]:
        return self._split

    # --- building examples --------------------------------------------------------------
    def _clean(self, split: str, positions: np.ndarray | torch.Tensor):
        """Clean molecules: centred positions x_1 [N, 3], scaled one-hot types h_1 [N, T], batch [N]."""
        z, pos, batch = self.molecules.gather(self._split[split][np.asarray(positions)])
        n = len(positions)
        one_hot = torch.nn.functional.one_hot(self._type_index[z], len(self.atom_types)).float()
        return centre_per_group(pos.float(), batch, n), one_hot * CARD["flow"]["type_scale"], batch

    def _example(self, x1, h1, batch, x0, h0, t) -> Example:
        b = len(t)
        t_atom = t[batch][:, None]
        inputs = flow_batch((1 - t_atom) * x0 + t_atom * x1, (1 - t_atom) * h0 + t_atom * h1, t, batch)
        return Example(inputs, {"pos_velocity": x1 - x0, "type_velocity": h1 - h0}, b)

    def train_batch(self, batch_size: int, generator: torch.Generator, augment: bool) -> Example:
        positions = torch.randint(len(self._split["train"]), (batch_size,), generator=generator).numpy()
        x1, h1, batch = self._clean("train", positions)
        if augment:
            rotations = random_rotations(batch_size, generator)
            x1 = torch.einsum("nij,nj->ni", rotations[batch], x1)
        n_atoms = torch.bincount(batch, minlength=batch_size)
        x0, h0, _ = initial_noise(n_atoms, len(self.atom_types), generator)
        return self._example(x1, h1, batch, x0, h0, torch.rand(batch_size, generator=generator))

    def _fixed_noise_example(self, split: str, offset: int) -> Example:
        """A whole held-out split with noise and times fixed by the card's seed."""
        generator = torch.Generator().manual_seed(CARD["split"]["noise_seed"] * 100 + offset)
        n = len(self._split[split])
        x1, h1, batch = self._clean(split, np.arange(n))
        x0, h0, _ = initial_noise(torch.bincount(batch, minlength=n), len(self.atom_types), generator)
        return self._example(x1, h1, batch, x0, h0, torch.rand(n, generator=generator))

    def _slice(self, example: Example, start: int, stop: int) -> Example:
        ptr = example.inputs.ptr
        a, b = int(ptr[start]), int(ptr[stop])
        inputs = example.inputs
        sliced = flow_batch(inputs.pos[a:b], inputs.x[a:b], inputs.t[start:stop], inputs.batch[a:b] - start)
        return Example(sliced, {k: v[a:b] for k, v in example.targets.items()}, stop - start)

    def heldout_batches(self, split: str, batch_size: int) -> Iterator[Example]:
        example = self._heldout[split]
        for start in range(0, example.size, batch_size):
            yield self._slice(example, start, min(start + batch_size, example.size))

    def probe_example(self) -> Example:
        return self._slice(self._heldout["test"], 0, min(self.probe_settings.n_examples, self._heldout["test"].size))

    # --- metrics ----------------------------------------------------------------------------
    def metrics(self, predictions, example):
        rows = example.inputs.num_nodes
        return {f"{name}_mse": (float((predictions[name] - example.targets[name]).pow(2).sum()), rows)
                for name in ("pos_velocity", "type_velocity")}

    def final_metrics(self, model: torch.nn.Module, device: torch.device, seed: int) -> dict[str, float]:
        """EDM sample quality of molecules sampled with atom counts drawn from the training set."""
        settings = CARD["sampling"]
        generator = torch.Generator().manual_seed(settings["seed"] + seed)
        counts = torch.as_tensor(self.molecules.n_atoms[self._split["train"]])
        n_atoms = counts[torch.randint(len(counts), (settings["n_samples"],), generator=generator)]
        start = time.perf_counter()
        molecules = []
        for chunk in n_atoms.split(100):
            molecules += sample_molecules(model, chunk, self.atom_types, settings["steps"], settings["method"],
                                          generator, device)
        seconds = time.perf_counter() - start
        quality = sample_quality(molecules)
        return {**{f"sample_{k}": float(v) for k, v in quality.items()},
                "sample_molecules_per_second": len(molecules) / seconds}
