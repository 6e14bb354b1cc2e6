"""The task contract: what a task tells the runner, the probe and a model.

A task fixes its data and splits, the outputs a model must return, how rotations act on inputs
and outputs (its :class:`Geometry`), its loss and its metrics. Tasks live in ``tasks/`` and are
found through the ``equibench.tasks`` entry-point group; the core never names one.

Model-facing contract (DESIGN 3):

- point-cloud tasks call ``model(batch)`` with a ``torch_geometric.data.Batch`` holding ``x``
  (float ``[N, F]`` node features, ``F = task.node_feature_dim``), ``pos`` (float ``[N, 3]``, Å,
  centred per molecule), ``batch`` (``[N]``), ``ptr`` and the task's per-molecule extras named in
  ``task.graph_fields`` (e.g. ``t`` ``[B]`` for flow matching); ``z`` (``[N]`` atomic numbers) too
  where the atom types are inputs. The model returns ``{output.name: tensor}``.
- voxel tasks call ``model(grid)`` with ``[B, C, D, D, D]`` and expect the same shape back.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .rotations import Kind, inverse, rotate_grid
from .scatter import scatter_mean

Inputs = Any  # a torch_geometric Batch (point clouds) or a grid tensor [B, C, D, D, D]
Targets = dict[str, torch.Tensor]


@dataclass(frozen=True)
class OutputSpec:
    """One named model output.

    Attributes:
        name: key in the model's output dict (``"energy"``, ``"forces"``, ...).
        kind: how rotations act on it: ``scalar`` (invariant), ``vector`` or ``grid``.
        level: ``graph`` (one row per molecule), ``node`` (one row per atom) or ``grid``.
        feature_shape: shape of one row after the leading axis, e.g. ``()`` for energy,
            ``(3,)`` for forces, ``(5,)`` for atom-type logits, ``(C, D, D, D)`` for a grid.
        loss_weight: weight of this output's loss term in the task's combined loss.
        unit: unit of the model's output values (as the task's loss sees them).
    """

    name: str
    kind: Kind
    level: Literal["graph", "node", "grid"]
    feature_shape: tuple[int, ...] = ()
    loss_weight: float = 1.0
    unit: str = ""


@dataclass(frozen=True)
class Example:
    """A batch of model inputs with their targets. ``size`` is the number of examples."""

    inputs: Inputs
    targets: Targets
    size: int

    def to(self, device: torch.device | str) -> "Example":
        return Example(self.inputs.to(device), {k: v.to(device) for k, v in self.targets.items()}, self.size)


class Geometry(ABC):
    """How a rotation acts on a task's inputs and outputs, for K rotations at once."""

    @abstractmethod
    def twist_inputs(self, inputs: Inputs, rotations: torch.Tensor) -> Inputs:
        """K rotated copies of ``inputs`` as one batch, copy k rotated by ``rotations[k]``."""

    @abstractmethod
    def untwist_output(self, output: torch.Tensor, spec: OutputSpec, rotations: torch.Tensor,
                       inputs: Inputs) -> torch.Tensor:
        """Model output on the K copies ``[K*E, *F]`` -> ``[K, E, *F]``, copy k rotated back by R_k^-1."""

    @abstractmethod
    def example_index(self, spec: OutputSpec, inputs: Inputs) -> torch.Tensor | None:
        """Which example each row of an output belongs to (``None``: one row per example)."""


@dataclass(frozen=True)
class PointCloudGeometry(Geometry):
    """Rotations acting on molecules in a PyG batch: ``vector_fields`` rotate, the rest are invariant.

    ``graph_fields`` name the per-molecule tensors (all other tensors are per atom).
    """

    vector_fields: tuple[str, ...] = ("pos",)
    graph_fields: tuple[str, ...] = ()

    def twist_inputs(self, inputs, rotations):
        from torch_geometric.data import Batch

        k, n, b = rotations.shape[0], inputs.num_nodes, inputs.num_graphs
        fields: dict[str, torch.Tensor] = {}
        for key in inputs.keys():
            value = inputs[key]
            if key == "batch":
                offsets = torch.arange(k, device=value.device).repeat_interleave(n) * b
                fields[key] = value.repeat(k) + offsets
            elif key == "ptr":
                fields[key] = torch.cat([value[:1]] + [value[1:] + i * n for i in range(k)])
            elif key in self.vector_fields:
                rotated = torch.einsum("kij,nj->kni", rotations.to(value.dtype), value)
                fields[key] = rotated.reshape(k * n, 3)
            elif torch.is_tensor(value):
                fields[key] = value.repeat(k, *([1] * (value.dim() - 1)))
        return Batch(**fields)

    def untwist_output(self, output, spec, rotations, inputs):
        rows = inputs.num_nodes if spec.level == "node" else inputs.num_graphs
        k = rotations.shape[0]
        stacked = output.reshape(k, rows, *output.shape[1:])
        if spec.kind == "vector":
            # row vectors: R^T v  ==  v @ R
            stacked = torch.einsum("kn...j,kji->kn...i", stacked, rotations.to(output.dtype))
        return stacked

    def example_index(self, spec, inputs):
        return inputs.batch if spec.level == "node" else None


class VoxelGeometry(Geometry):
    """Cube rotations acting exactly on grids ``[B, C, D, D, D]``."""

    def twist_inputs(self, inputs, rotations):
        return torch.cat([rotate_grid(inputs, r) for r in rotations])

    def untwist_output(self, output, spec, rotations, inputs):
        k = rotations.shape[0]
        chunks = output.reshape(k, -1, *output.shape[1:])
        return torch.stack([rotate_grid(chunk, inverse(r)) for chunk, r in zip(chunks, rotations)])

    def example_index(self, spec, inputs):
        return None


@dataclass
class ProbeSettings:
    """The fixed equivariance-probe settings of a task (held-out examples, K, seed)."""

    n_examples: int = 32
    k: int = 16
    seed: int = 0
    group: Literal["so3", "cube"] = "so3"


@dataclass
class Budget:
    """A task's default training budget; every field can be overridden from the CLI."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 10.0
    extras: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A benchmark task. Subclasses set the class attributes and implement the data methods."""

    name: str
    version: str
    description: str
    outputs: tuple[OutputSpec, ...]
    geometry: Geometry
    #: point-cloud tasks: dimension of ``batch.x``, the per-atom input features
    node_feature_dim: int = 0
    #: point-cloud tasks: names of per-molecule extras in the batch (e.g. ``("t",)``)
    graph_fields: tuple[str, ...] = ()
    #: point-cloud tasks: atomic numbers the task can contain, in one-hot order
    atom_types: tuple[int, ...] = ()
    #: metric the leaderboard ranks by (lower is better), a key of :meth:`metrics`' result
    primary_metric: str = "loss"
    #: the task's card (``card.yaml``); its ``budget`` and ``probe`` sections set the defaults
    card: dict[str, Any] = {}

    def __init__(self, dataset: str | None = None, data_dir: str | None = None,
                 subset: int | None = None, download: bool = False):
        self.dataset = dataset
        self.data_dir = data_dir
        self.subset = subset
        self.download = download

    # --- description -------------------------------------------------------------------
    @property
    def budget(self) -> Budget:
        return Budget(**self.card.get("budget", {}))

    @property
    def probe_settings(self) -> ProbeSettings:
        return ProbeSettings(**self.card.get("probe", {}))

    def probe_indices(self, n_heldout: int) -> torch.Tensor:
        """The probe's fixed examples: ``n_examples`` of ``n_heldout`` held-out ones, drawn with the
        probe seed, sorted."""
        settings = self.probe_settings
        order = torch.randperm(n_heldout, generator=torch.Generator().manual_seed(settings.seed))
        return order[: settings.n_examples].sort().values

    def output_spec(self, name: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"task {self.name!r} has no output {name!r}; outputs: {[s.name for s in self.outputs]}")

    def describe(self) -> dict[str, Any]:
        """JSON-ready identity of this task instance for the results file."""
        return {"name": self.name, "version": self.version, "dataset": self.dataset,
                "subset": self.subset, "split_hash": self.split_hash()}

    # --- data ----------------------------------------------------------------------------
    @abstractmethod
    def split_indices(self) -> dict[str, np.ndarray]:
        """The fixed split: ``{"train": idx, "val": idx, "test": idx}`` into the dataset."""

    def split_hash(self) -> str:
        """sha256 of the split indices (and the dataset identity), recorded in results."""
        return hash_split(self.split_indices(), extra=f"{self.name}:{self.dataset}")

    @abstractmethod
    def train_batch(self, batch_size: int, generator: torch.Generator, augment: bool) -> Example:
        """A random training batch, rotated by Haar-random rotations when ``augment``."""

    @abstractmethod
    def heldout_batches(self, split: str, batch_size: int) -> Iterator[Example]:
        """Deterministic batches covering a held-out split (``"val"`` or ``"test"``)."""

    @abstractmethod
    def probe_example(self) -> Example:
        """The fixed held-out examples the equivariance probe uses."""

    # --- loss and metrics ------------------------------------------------------------------
    def loss(self, predictions: dict[str, torch.Tensor], example: Example) -> torch.Tensor:
        """The combined training loss: Σ_outputs weight · mean over examples of the per-row
        squared error summed over features (rows of one example averaged first)."""
        total = 0.0
        for spec in self.outputs:
            err = (predictions[spec.name] - example.targets[spec.name]).pow(2)
            per_row = err.reshape(err.shape[0], -1).sum(1)
            index = self.geometry.example_index(spec, example.inputs)
            if index is not None:
                per_row = scatter_mean(per_row, index, example.size)
            total = total + spec.loss_weight * per_row.mean()
        return total

    @abstractmethod
    def metrics(self, predictions: dict[str, torch.Tensor], example: Example) -> dict[str, tuple[float, int]]:
        """Metric sums and counts on one batch, ``{name: (sum, count)}``, averaged by the runner."""

    def final_metrics(self, model: torch.nn.Module, device: torch.device, seed: int) -> dict[str, float]:
        """Extra metrics computed once at the end (e.g. sample quality). Default: none."""
        return {}


def read_card(package: str) -> dict[str, Any]:
    """The ``card.yaml`` of a task or baseline package (works from an installed wheel too)."""
    from importlib import resources

    import yaml

    return yaml.safe_load(resources.files(package).joinpath("card.yaml").read_text())


def hash_split(split: dict[str, np.ndarray], extra: str = "") -> str:
    """sha256 over split names and their int64 indices, in name order."""
    digest = hashlib.sha256(extra.encode())
    for name in sorted(split):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split[name], dtype=np.int64).tobytes())
    return digest.hexdigest()
