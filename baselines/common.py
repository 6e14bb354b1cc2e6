"""Shared parts of the point-cloud baselines: graphs, scatters, inputs, output head, force rule.

A baseline is an *encoder* ``(features [N, F], pos [N, 3] Å, batch [N]) -> (h, vectors)`` giving
per-atom invariant features ``h`` ``[N, C]`` and per-atom vector channels ``vectors`` ``[N, V, 3]``
(equivariant or not, as the encoder is); :class:`PointCloudModel` wraps it with the task's inputs,
the shared :class:`OutputHead` and, for energy/forces tasks, ``forces = -dE/dpos``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from equibench.scatter import centre_per_group, scatter_sum
from equibench.task import OutputSpec, Task, read_card

#: outputs that make a task conservative: forces are the negative gradient of the energy
ENERGY, FORCES = "energy", "forces"


def molecule_pairs(batch: torch.Tensor) -> torch.Tensor:
    """All ordered pairs ``(j, i)``, ``i != j``, of atoms in the same molecule, ``[2, E]``.

    ``batch`` ``[N]`` is the sorted molecule index of each atom (as in a PyG batch). Row 0 holds
    the source ``j``, row 1 the target ``i`` (PyG's ``source_to_target`` convention).
    """
    sizes = torch.bincount(batch)
    starts = torch.cumsum(sizes, 0) - sizes
    partners = sizes[batch]  # [N] atoms in each atom's molecule
    source = torch.arange(batch.numel(), device=batch.device).repeat_interleave(partners)
    first_pair = torch.cumsum(partners, 0) - partners
    rank = torch.arange(source.numel(), device=batch.device) - first_pair.repeat_interleave(partners)
    target = starts[batch[source]] + rank
    distinct = source != target
    return torch.stack([source[distinct], target[distinct]])


def radius_graph(pos: torch.Tensor, batch: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Pairs ``(j, i)``, ``i != j``, in the same molecule with ``|pos_i - pos_j| <= cutoff`` (Å), ``[2, E]``."""
    pairs = molecule_pairs(batch)
    distance = (pos[pairs[0]] - pos[pairs[1]]).norm(dim=-1)
    return pairs[:, distance <= cutoff]


def input_dim(task: Task) -> int:
    """Width of :func:`node_inputs`: the task's node features plus one column per graph field."""
    return task.node_feature_dim + len(task.graph_fields)


def node_inputs(batch, graph_fields: tuple[str, ...]) -> torch.Tensor:
    """Invariant per-atom inputs ``[N, F + G]``: ``batch.x`` and each per-molecule scalar field
    (e.g. flow time ``t`` ``[B]``) broadcast to its molecule's atoms."""
    columns = [batch.x] + [batch[name].reshape(-1)[batch.batch].unsqueeze(-1).to(batch.x.dtype)
                           for name in graph_fields]
    return torch.cat(columns, dim=-1)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(width_in, width_out), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class OutputHead(nn.Module):
    """Per-atom features -> every output of a task.

    Scalar outputs: an MLP on ``h`` per atom. Vector outputs (feature shape ``(3,)``): a linear mix,
    without bias, of the vector channels, which keeps them equivariant when the channels are.
    Node-level vectors are centred per molecule (no net translation or force); graph-level outputs
    are the sum over the molecule's atoms (so an energy is a sum of atomic energies).
    """

    def __init__(self, outputs: tuple[OutputSpec, ...], scalar_dim: int, vector_channels: int, hidden: int):
        super().__init__()
        self.outputs = outputs
        self.scalar_heads = nn.ModuleDict()
        self.vector_heads = nn.ModuleDict()
        for spec in outputs:
            if spec.kind == "scalar":
                self.scalar_heads[spec.name] = mlp([scalar_dim, hidden, math.prod(spec.feature_shape)])
            elif spec.kind == "vector" and spec.feature_shape == (3,):
                self.vector_heads[spec.name] = nn.Linear(vector_channels, 1, bias=False)
            else:
                raise ValueError(f"point-cloud baselines predict scalars and 3-vectors; output {spec.name!r} "
                                 f"is a {spec.kind} of feature shape {spec.feature_shape}")

    def forward(self, h: torch.Tensor, vectors: torch.Tensor, batch: torch.Tensor,
                num_graphs: int) -> dict[str, torch.Tensor]:
        """``h`` ``[N, C]``, ``vectors`` ``[N, V, 3]`` -> ``{name: [N or B, *feature_shape]}``."""
        predictions = {}
        for spec in self.outputs:
            if spec.kind == "scalar":
                per_atom = self.scalar_heads[spec.name](h).reshape(h.shape[0], *spec.feature_shape)
            else:
                per_atom = self.vector_heads[spec.name](vectors.transpose(1, 2)).squeeze(-1)
                if spec.level == "node":
                    per_atom = centre_per_group(per_atom, batch, num_graphs)
            predictions[spec.name] = (scatter_sum(per_atom, batch, num_graphs) if spec.level == "graph"
                                      else per_atom)
        return predictions


class PointCloudModel(nn.Module):
    """An encoder with the task's inputs and outputs: what ``build_model(task)`` returns.

    When the task asks for ``energy`` and ``forces``, only the energy comes from the head and
    ``forces = -dE/dpos`` by autograd (also under ``torch.no_grad()``; the force graph is kept for
    a second backward pass only where gradients are enabled, i.e. in training).

    Args:
        encoder: ``(features [N, F], pos [N, 3], batch [N]) -> (h [N, C], vectors [N, V, 3])``
            with attributes ``scalar_dim`` (C) and ``vector_channels`` (V).
        task: the task whose ``outputs`` and ``graph_fields`` the model serves.
        equivariant: the encoder is exactly rotation-equivariant by construction.
        card: hyperparameters, recorded in results.
        head_hidden: hidden width of the scalar output MLPs.
    """

    def __init__(self, encoder: nn.Module, task: Task, equivariant: bool, card: dict, head_hidden: int):
        super().__init__()
        names = {spec.name for spec in task.outputs}
        self.conservative = {ENERGY, FORCES} <= names
        head_outputs = tuple(s for s in task.outputs if not (self.conservative and s.name == FORCES))
        self.encoder = encoder
        self.head = OutputHead(head_outputs, encoder.scalar_dim, encoder.vector_channels, head_hidden)
        self.graph_fields = tuple(task.graph_fields)
        self.equivariant = equivariant
        self.card = card

    def predict(self, batch, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head's outputs for ``batch`` with atom positions ``pos``."""
        h, vectors = self.encoder(node_inputs(batch, self.graph_fields), pos, batch.batch)
        return self.head(h, vectors, batch.batch, batch.num_graphs)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        if not self.conservative:
            return self.predict(batch, batch.pos)
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            pos = batch.pos.detach().requires_grad_(True)
            predictions = self.predict(batch, pos)
            (gradient,) = torch.autograd.grad(predictions[ENERGY].sum(), pos, create_graph=keep_graph)
        predictions[FORCES] = -gradient
        if not keep_graph:
            predictions = {name: value.detach() for name, value in predictions.items()}
        return predictions


def build_from_card(package: str, task: Task, encoder_class: type[nn.Module], **overrides) -> PointCloudModel:
    """A :class:`PointCloudModel` from the ``card.yaml`` of a baseline ``package``.

    The encoder gets the input width and every hyperparameter except ``head_hidden`` (the head's);
    ``overrides`` replace card hyperparameters. The model's ``card`` records the values used.
    """
    card = read_card(package)
    hyperparameters = {**card["hyperparameters"], **overrides}
    encoder_args = {name: value for name, value in hyperparameters.items() if name != "head_hidden"}
    encoder = encoder_class(input_dim(task), **encoder_args)
    return PointCloudModel(encoder, task, bool(card["equivariant"]), hyperparameters,
                           hyperparameters["head_hidden"])
