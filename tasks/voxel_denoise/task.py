"""The voxel denoising task: recover a molecule's clean density grid from a noisy copy."""
from __future__ import annotations

import difflib
from collections.abc import Iterator

import numpy as np
import torch

from equibench.rotations import random_rotations
from equibench.scatter import centre_per_group
from equibench.task import Example, OutputSpec, Task, VoxelGeometry, read_card

from .render import GridSpec, render

CARD = read_card(__package__)
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class VoxelDenoiseTask(Task):
    """QM9 densities on a grid: input clean grid + Gaussian noise ``[B, 5, D, D, D]``, target the clean grid.

    The grid is centred on the mean of each molecule's atom coordinates. Training batches are
    rendered on the fly; with ``augment`` the centred coordinates are rotated by Haar-random
    rotations before rendering (continuous SO(3), no grid interpolation). Held-out noise is fixed
    per example. The probe uses the 24 cube rotations, which act on grids exactly.

    Args:
        dataset: a grid setting of ``card.yaml`` (``qm9``: 16³ at 0.5 Å; ``qm9-voxmol``: 32³ at 0.25 Å).
        data_dir: cache folder for the parsed QM9 arrays (default ``$EQUIBENCH_DATA/qm9``).
        subset: train on the first ``subset`` molecules of the training split only.
        molecules, split: use these molecules (a :class:`QM9Molecules`-like object with ``gather``)
            and ``{"train", "val", "test"}`` positions into them instead of QM9 (tests, custom data).
        grid: render on this grid instead of the dataset's (tests, custom settings; not a benchmark score).
    """

    name = CARD["name"]
    version = CARD["version"]
    description = CARD["description"]
    geometry = VoxelGeometry()
    primary_metric = "mse"
    card = CARD

    def __init__(self, dataset: str | None = None, data_dir: str | None = None, subset: int | None = None,
                 download: bool = False, *, molecules=None, split: dict[str, np.ndarray] | None = None,
                 grid: GridSpec | None = None):
        dataset = dataset or CARD["default_dataset"]
        if dataset not in CARD["datasets"]:
            close = difflib.get_close_matches(dataset, list(CARD["datasets"]), n=3)
            raise ValueError(f"voxel_denoise has no dataset {dataset!r}." + (f" Did you mean: {', '.join(close)}?"
                             if close else "") + f" Available: {', '.join(CARD['datasets'])}")
        if subset is not None and subset < 1:
            raise ValueError(f"subset must be a positive number of training molecules, got {subset}")
        super().__init__(dataset, data_dir, subset, download)
        setting = CARD["datasets"][dataset]
        self.grid = grid or GridSpec(size=setting["grid_size"], spacing=setting["spacing"], sigma=setting["sigma"],
                                     elements=tuple(CARD["elements"]))
        self.noise_sigma = float(CARD["noise_sigma"])
        self.outputs = (OutputSpec("grid", "grid", "grid", self.grid.shape, 1.0, unit="density (lone-atom peak 1)"),)
        if molecules is None:
            if split is not None:
                raise ValueError("a custom `split` needs its `molecules` too")
            molecules, split = self._load_qm9()
        elif split is None:
            raise ValueError("custom `molecules` need a `split` {'train', 'val', 'test'} of positions into them")
        missing = {"train", "val", "test"} - set(split)
        if missing:
            raise ValueError(f"split is missing {sorted(missing)}; it needs 'train', 'val' and 'test'")
        self.molecules = molecules
        self._split = {name: np.asarray(split[name], dtype=np.int64) for name in ("train", "val", "test")}
        #: positions (into ``molecules``) of the molecules training batches are drawn from
        self.train_indices = self._split["train"][:subset] if subset else self._split["train"]
        if subset and subset > len(self._split["train"]):
            raise ValueError(f"subset {subset} exceeds the {len(self._split['train'])} training molecules")

    def _load_qm9(self):
        from ..qm9_flow.data import edm_split, load_qm9pack

        molecules = load_qm9pack(self.data_dir)
        edm = edm_split(len(molecules))
        sizes = CARD["split"]
        train = edm["train"] if sizes["train"] == "all" else edm["train"][: sizes["train"]]
        return molecules, {"train": train, "val": edm["valid"][: sizes["val"]], "test": edm["test"][: sizes["test"]]}

    def split_indices(self) -> dict[str, np.ndarray]:
        return self._split

    # --- data -------------------------------------------------------------------------------
    def clean_grids(self, indices: np.ndarray, rotations: torch.Tensor | None = None) -> torch.Tensor:
        """Clean grids ``[B, C, D, D, D]`` of molecules at ``indices`` (positions into the molecules),
        centred on the mean atom position and, if given, rotated by ``rotations`` ``[B, 3, 3]`` about it."""
        z, pos, batch = self.molecules.gather(indices)
        pos = centre_per_group(pos.float(), batch, len(indices))
        if rotations is not None:
            pos = torch.einsum("nij,nj->ni", rotations.to(pos.dtype)[batch], pos)
        return render(z, pos, batch, len(indices), self.grid)

    def heldout_noise(self, split: str, positions: torch.Tensor) -> torch.Tensor:
        """The fixed noise ``[B, C, D, D, D]`` of examples ``positions`` (their places in the split)."""
        base = int(CARD["split"]["noise_seed"]) + 1_000_003 * SPLIT_CODES[split]
        return torch.stack([torch.randn(self.grid.shape, generator=torch.Generator().manual_seed(base + int(i)))
                            for i in positions]) * self.noise_sigma

    def train_batch(self, batch_size: int, generator: torch.Generator, augment: bool) -> Example:
        pick = torch.randint(len(self.train_indices), (batch_size,), generator=generator)
        rotations = random_rotations(batch_size, generator) if augment else None
        clean = self.clean_grids(self.train_indices[pick.numpy()], rotations)
        noise = torch.randn(clean.shape, generator=generator) * self.noise_sigma
        return Example(clean + noise, {"grid": clean}, batch_size)

    def _heldout(self, split: str, positions: torch.Tensor) -> Example:
        clean = self.clean_grids(self._split[split][positions.numpy()])
        return Example(clean + self.heldout_noise(split, positions), {"grid": clean}, len(positions))

    def heldout_batches(self, split: str, batch_size: int) -> Iterator[Example]:
        if split not in ("val", "test"):
            raise ValueError(f"held-out split must be 'val' or 'test', got {split!r}")
        n = len(self._split[split])
        for start in range(0, n, batch_size):
            yield self._heldout(split, torch.arange(start, min(start + batch_size, n)))

    def probe_example(self) -> Example:
        return self._heldout("test", self.probe_indices(len(self._split["test"])))

    # --- loss and metrics ----------------------------------------------------------------------
    def loss(self, predictions: dict[str, torch.Tensor], example: Example) -> torch.Tensor:
        """Squared error averaged over the ``C · D³`` voxels of each grid, then over grids."""
        return _per_grid_mse(predictions["grid"], example.targets["grid"]).mean()

    def metrics(self, predictions, example):
        mse = _per_grid_mse(predictions["grid"], example.targets["grid"]).double()
        psnr = -10.0 * torch.log10(mse.clamp(min=1e-12))  # peak 1: a lone atom's density maximum
        return {"mse": (float(mse.sum()), example.size), "psnr": (float(psnr.sum()), example.size)}


def _per_grid_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over each grid's voxels, ``[B]``."""
    return (prediction - target).pow(2).reshape(prediction.shape[0], -1).mean(1)

