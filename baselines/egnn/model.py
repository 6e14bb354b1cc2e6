"""E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling, ICML 2021, arXiv:2102.09844).

Messages depend on the invariant features of both atoms and their squared distance; coordinates
move along the differences ``x_i - x_j`` weighted by a learned invariant, so the network is
exactly equivariant to rotations, reflections and translations.
"""
from __future__ import annotations

import torch
from torch import nn

from equibench.scatter import scatter_mean, scatter_sum

from ..common import mlp, molecule_pairs, radius_graph


class EGNNLayer(nn.Module):
    """Equivariant graph convolution (EGNN eqs. 3-6), ``(h [N, H], x [N, 3]) -> (h', x' - x)``:

    ``m_ij = φ_e(h_i, h_j, |x_i - x_j|²)``, ``x_i' = x_i + mean_j (x_i - x_j) φ_x(m_ij)``,
    ``h_i' = h_i + φ_h(h_i, Σ_j m_ij)``.
    """

    def __init__(self, hidden: int):
        super().__init__()
        # φ_e's first layer on [h_i, h_j, d²], split so the feature parts run per atom, not per edge
        self.edge_target = nn.Linear(hidden, hidden)
        self.edge_source = nn.Linear(hidden, hidden, bias=False)
        self.edge_distance = nn.Linear(1, hidden, bias=False)
        self.edge_mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.coordinate_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False))
        # tiny initial coordinate steps, as in the reference implementation
        nn.init.xavier_uniform_(self.coordinate_mlp[-1].weight, gain=0.001)
        self.node_mlp = mlp([2 * hidden, hidden, hidden])

    def forward(self, h: torch.Tensor, x: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New features and the coordinate step; ``edges`` ``[2, E]`` holds (source j, target i)."""
        source, target = edges
        difference = x[target] - x[source]
        squared_distance = difference.pow(2).sum(-1, keepdim=True)
        messages = self.edge_mlp(self.edge_target(h)[target] + self.edge_source(h)[source]
                                 + self.edge_distance(squared_distance))
        step = scatter_mean(difference * self.coordinate_mlp(messages), target, x.shape[0])
        h = h + self.node_mlp(torch.cat([h, scatter_sum(messages, target, h.shape[0])], -1))
        return h, step


class EGNNEncoder(nn.Module):
    """Atoms -> invariant features ``[N, hidden]`` and one vector channel ``[N, 1, 3]``, the total
    displacement ``x_final - x_initial`` (translation-invariant, rotation-equivariant), summed
    from the layers' steps rather than subtracted (no float32 cancellation while steps are small).

    ``cutoff`` (Å) limits messages to a radius graph; ``None`` connects all atoms of a molecule.
    """

    def __init__(self, in_features: int, hidden: int, num_layers: int, cutoff: float | None):
        super().__init__()
        self.cutoff = cutoff
        self.scalar_dim, self.vector_channels = hidden, 1
        self.embedding = nn.Linear(in_features, hidden)
        self.layers = nn.ModuleList(EGNNLayer(hidden) for _ in range(num_layers))

    def forward(self, features: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor):
        """``features`` ``[N, F]``, ``pos`` ``[N, 3]`` Å, ``batch`` ``[N]`` -> ``(h [N, H], vectors [N, 1, 3])``."""
        edges = molecule_pairs(batch) if self.cutoff is None else radius_graph(pos, batch, self.cutoff)
        h, displacement = self.embedding(features), torch.zeros_like(pos)
        for layer in self.layers:
            h, step = layer(h, pos + displacement, edges)
            displacement = displacement + step
        return h, displacement.unsqueeze(1)
