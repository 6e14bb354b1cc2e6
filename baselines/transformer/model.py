"""A plain transformer over the atoms of each molecule: not equivariant by construction.

Each atom is a token made from its features and Cartesian coordinates (relative to the
molecule's centroid, so outputs are translation-invariant); attention runs within a molecule
(padded batch with a key padding mask). Geometry also enters every attention layer as a
learned bias from the raw displacement vectors ``x_i - x_j`` through fixed random Fourier
features ``sin/cos(W (x_i - x_j))`` (W fixed, so the bias is NOT rotation-invariant). The model
is permutation-equivariant but has to learn rotational equivariance from data.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_geometric.utils import to_dense_batch

from equibench.scatter import centre_per_group


class AtomTransformerEncoder(nn.Module):
    """Atoms -> features ``[N, d_model]`` and one (non-equivariant) vector channel ``[N, 1, 3]``,
    a linear map of the features."""

    def __init__(self, in_features: int, d_model: int, num_heads: int, num_layers: int, feedforward: int,
                 fourier_features: int, fourier_scale: float):
        super().__init__()
        self.scalar_dim, self.vector_channels, self.num_heads = d_model, 1, num_heads
        self.tokens = nn.Linear(in_features + 3, d_model)
        frequencies = torch.randn(3, fourier_features, generator=torch.Generator().manual_seed(0)) * fourier_scale
        self.register_buffer("frequencies", frequencies)  # 1/Å
        self.pair_bias = nn.Sequential(nn.Linear(2 * fourier_features, d_model), nn.SiLU(),
                                       nn.Linear(d_model, num_heads))
        layer = nn.TransformerEncoderLayer(d_model, num_heads, feedforward, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model),
                                            enable_nested_tensor=False)
        self.vector_projection = nn.Linear(d_model, 3)

    def forward(self, features: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor):
        """``features`` ``[N, F]``, ``pos`` ``[N, 3]`` Å, ``batch`` ``[N]`` -> ``(h [N, D], vectors [N, 1, 3])``."""
        relative = centre_per_group(pos, batch, int(batch.max()) + 1)
        tokens, present = to_dense_batch(self.tokens(torch.cat([features, relative], -1)), batch)
        # the math kernel is twice differentiable, as forces = -dE/dpos trained by gradient need; the
        # encoder's inference fast path is off because it returns NaN with a float mask on padded keys
        fast_path = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with sdpa_kernel(SDPBackend.MATH):
                h = self.layers(tokens, mask=self._attention_bias(relative, batch, present))[present]
        finally:
            torch.backends.mha.set_fastpath_enabled(fast_path)
        return h, self.vector_projection(h).unsqueeze(1)

    def _attention_bias(self, pos: torch.Tensor, batch: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Additive attention mask ``[B * heads, M, M]``: a learned function of ``x_i - x_j``, and -inf
        on padded keys."""
        dense, _ = to_dense_batch(pos, batch)  # [B, M, 3]
        phase = (dense[:, :, None] - dense[:, None]) @ self.frequencies  # [B, M, M, F]
        bias = self.pair_bias(torch.cat([phase.sin(), phase.cos()], -1))  # [B, M, M, heads]
        bias = bias.masked_fill(~present[:, None, :, None], float("-inf"))
        return bias.permute(0, 3, 1, 2).reshape(-1, *bias.shape[1:3])
