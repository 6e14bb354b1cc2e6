"""A plain transformer over the atoms of each molecule: not equivariant by construction.

Each atom is a token made from its features and Cartesian coordinates (relative to the
molecule's centroid, so outputs are translation-invariant); attention runs
within a molecule (padded batch with a key padding mask) and there is no positional encoding,
so the model is permutation-equivariant but has to learn rotational equivariance from data.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_geometric.utils import to_dense_batch

from ..common import centred


class AtomTransformerEncoder(nn.Module):
    """Atoms -> features ``[N, d_model]`` and one (non-equivariant) vector channel ``[N, 1, 3]``,
    a linear map of the features."""

    def __init__(self, in_features: int, d_model: int, num_heads: int, num_layers: int, feedforward: int):
        super().__init__()
        self.scalar_dim, self.vector_channels = d_model, 1
        self.tokens = nn.Linear(in_features + 3, d_model)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, feedforward, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model),
                                            enable_nested_tensor=False)
        self.vector_projection = nn.Linear(d_model, 3)

    def forward(self, features: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor):
        """``features`` ``[N, F]``, ``pos`` ``[N, 3]`` Å, ``batch`` ``[N]`` -> ``(h [N, D], vectors [N, 1, 3])``."""
        tokens, present = to_dense_batch(self.tokens(torch.cat([features, centred(pos, batch)], -1)), batch)
        # the math kernel is twice differentiable, as forces = -dE/dpos trained by gradient need
        with sdpa_kernel(SDPBackend.MATH):
            h = self.layers(tokens, src_key_padding_mask=~present)[present]
        return h, self.vector_projection(h).unsqueeze(1)
