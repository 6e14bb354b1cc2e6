"""NequIP-style encoder in e3nn: spherical-harmonic convolutions with radial MLPs and gates.

Follows Batzner et al. 2022 (Nat. Commun. 13, 2453) at CPU size: atom embedding into scalars,
interaction blocks of (self-interaction, convolution, self-interaction) plus a self-connection
conditioned on the atom's input features, then a gated nonlinearity; Bessel radial basis with a
polynomial cutoff.
"""
from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from equibench.scatter import scatter_sum

from ..common import radius_graph


class BesselBasis(nn.Module):
    """``sqrt(2/c) sin(nπr/c) / r`` for n = 1..num_basis times the smooth polynomial cutoff, ``[E, num_basis]``.

    The cutoff ``u(r/c)`` (NequIP's, p = 6) falls to 0 at ``r = c`` with two vanishing derivatives,
    so energies and forces stay smooth when atoms cross the cutoff.
    """

    def __init__(self, cutoff: float, num_basis: int, p: int = 6):
        super().__init__()
        self.cutoff, self.p = cutoff, p
        self.register_buffer("frequencies", torch.arange(1, num_basis + 1) * math.pi / cutoff)

    def envelope(self, r: torch.Tensor) -> torch.Tensor:
        x, p = r / self.cutoff, self.p
        u = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        return u * (x < 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Distances ``r`` ``[E]`` (Å, > 0) -> ``[E, num_basis]``."""
        bessel = math.sqrt(2 / self.cutoff) * torch.sin(self.frequencies * r.unsqueeze(-1)) / r.unsqueeze(-1)
        return bessel * self.envelope(r).unsqueeze(-1)


def gate_for(scalar_channels: int, vector_channels: int, lmax: int) -> Gate:
    """Gate on ``scalar_channels x 0e`` (SiLU) and ``vector_channels x l`` for l = 1..lmax of
    parity (-1)^l, each irrep multiplied by a sigmoid of its own extra scalar."""
    gated = o3.Irreps([(vector_channels, (l, (-1) ** l)) for l in range(1, lmax + 1)])
    return Gate(f"{scalar_channels}x0e", [nn.functional.silu],
                f"{gated.num_irreps}x0e", [torch.sigmoid], gated)


class Interaction(nn.Module):
    """One NequIP interaction block, ``irreps_in`` -> ``gate.irreps_out``.

    ``h_i' = gate(SC(h_i ⊗ a_i) + linear_out(Σ_j TP(linear_in(h_j), Y(r̂_ij); R(|r_ij|)) / sqrt(n)))``
    where the tensor-product weights ``R`` come per edge from an MLP on the radial basis and the
    self-connection ``SC`` is a tensor product with the atom's invariant attributes ``a_i``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_attributes: o3.Irreps, gate: Gate, irreps_sh: o3.Irreps,
                 num_basis: int, radial_hidden: int, num_neighbors: float):
        super().__init__()
        irreps_target = gate.irreps_in
        paths, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_edge) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_edge:
                    if ir_out in irreps_target:
                        instructions.append((i, j, len(paths), "uvu", True))
                        paths.append((mul, ir_out))
        irreps_mid = o3.Irreps(paths)
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.tensor_product = o3.TensorProduct(irreps_in, irreps_sh, irreps_mid, instructions,
                                               shared_weights=False, internal_weights=False)
        self.radial = FullyConnectedNet([num_basis, radial_hidden, self.tensor_product.weight_numel],
                                        nn.functional.silu)
        self.linear_out = o3.Linear(irreps_mid, irreps_target)
        self.self_connection = o3.FullyConnectedTensorProduct(irreps_in, irreps_attributes, irreps_target)
        self.gate = gate
        self.norm = num_neighbors ** -0.5

    def forward(self, h: torch.Tensor, attributes: torch.Tensor, edges: torch.Tensor, edge_sh: torch.Tensor,
                edge_basis: torch.Tensor) -> torch.Tensor:
        """``h`` ``[N, irreps_in.dim]``, ``attributes`` ``[N, A]``, ``edges`` ``[2, E]`` (source, target),
        ``edge_sh`` ``[E, irreps_sh.dim]``, ``edge_basis`` ``[E, num_basis]`` -> ``[N, gate.irreps_out.dim]``."""
        source, target = edges
        messages = self.tensor_product(self.linear_in(h)[source], edge_sh, self.radial(edge_basis))
        aggregated = scatter_sum(messages, target, h.shape[0]) * self.norm
        return self.gate(self.self_connection(h, attributes) + self.linear_out(aggregated))


class NequIPEncoder(nn.Module):
    """Atoms -> invariant features ``[N, scalar_channels]`` and the ``1o`` channels
    ``[N, vector_channels, 3]`` of the last interaction block; exactly E(3)-equivariant."""

    def __init__(self, in_features: int, cutoff: float, num_layers: int, scalar_channels: int,
                 vector_channels: int, lmax: int, num_basis: int, radial_hidden: int, num_neighbors: float):
        super().__init__()
        self.cutoff = cutoff
        self.scalar_dim, self.vector_channels = scalar_channels, vector_channels
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.embedding = nn.Linear(in_features, scalar_channels)
        self.radial_basis = BesselBasis(cutoff, num_basis)
        irreps, irreps_attributes = o3.Irreps(f"{scalar_channels}x0e"), o3.Irreps(f"{in_features}x0e")
        self.layers = nn.ModuleList()
        for _ in range(num_layers):
            gate = gate_for(scalar_channels, vector_channels, lmax)
            self.layers.append(Interaction(irreps, irreps_attributes, gate, self.irreps_sh, num_basis, radial_hidden,
                                           num_neighbors))
            irreps = gate.irreps_out
        self.vector_slice = irreps.slices()[[ir for _, ir in irreps].index(o3.Irrep("1o"))]

    def forward(self, features: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor):
        """``features`` ``[N, F]``, ``pos`` ``[N, 3]`` Å, ``batch`` ``[N]`` -> ``(h [N, C], vectors [N, V, 3])``."""
        edges = radius_graph(pos, batch, self.cutoff)
        edge_vectors = pos[edges[1]] - pos[edges[0]]
        edge_sh = o3.spherical_harmonics(self.irreps_sh, edge_vectors, normalize=True, normalization="component")
        edge_basis = self.radial_basis(edge_vectors.norm(dim=-1))
        h = self.embedding(features)
        for layer in self.layers:
            h = layer(h, features, edges, edge_sh, edge_basis)
        vectors = h[:, self.vector_slice].reshape(h.shape[0], self.vector_channels, 3)
        return h[:, :self.scalar_dim], vectors

