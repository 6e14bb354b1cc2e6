"""An equivariant voxel denoiser from e3nn's voxel convolution: ``clean ≈ Net(noisy)``.

Each convolution is :class:`e3nn.nn.models.v2104.voxel_convolution.Convolution`: kernels
``K(m) = Σ_k φ_k(|m|) TP(·, Y(m); w_k)`` on the lattice offsets ``m`` (in voxels), radial
functions times spherical harmonics combined by a tensor product, plus a linear self-connection.
A rotation of the cube maps lattice offsets onto lattice offsets, so ``K(R m) = D_out(R) K(m)
D_in(R)⁻¹`` holds on the sampled kernel itself and the network commutes exactly with the 24 cube
rotations of the grid (up to float round-off); for other rotations it is only approximately
equivariant, as any lattice model is. Inputs and outputs are ``C × 0e`` (one scalar field per
element density); hidden features are ``S × 0e + V × 1o`` with gated nonlinearities. As the
U-Net baseline, it predicts the clean grid directly (not the noise).

For speed on CPU the self-connection is folded into the centre tap of the kernel (one ``conv3d``
per layer, the same function as e3nn's ``forward``) and the gate works on the channel axis.

Build the model under ``torch.set_default_dtype(torch.float64)`` for a float64 equivariance test:
the spherical harmonics and Clebsch-Gordan tables are computed at construction in the default
dtype, and casting a float32 model with ``.double()`` keeps their float32 rounding.
"""
from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.math import normalize2mom
from e3nn.nn.models.v2104.voxel_convolution import Convolution
from torch import nn


class FusedConvolution(Convolution):
    """e3nn's voxel :class:`Convolution` with its self-connection added to the kernel's centre tap.

    ``forward`` computes ``sc(x) + g · conv3d(x, K)`` as ``conv3d(x, g K + δ ⊗ W_sc)``, ``W_sc`` the
    self-connection's matrix and ``g`` = ``kernel_gain`` (1: exactly e3nn's ``forward``); input and
    output are ``[B, irreps.dim, D, D, D]`` as in e3nn.
    """

    def __init__(self, irreps_in, irreps_out, irreps_sh, diameter: float, num_radial_basis: int,
                 kernel_gain: float = 1.0):
        super().__init__(irreps_in, irreps_out, irreps_sh, diameter, num_radial_basis)
        centre = torch.zeros(self.lattice.shape[:3])
        centre[tuple(s // 2 for s in centre.shape)] = 1.0
        self.register_buffer("centre", centre)
        self.kernel_gain = kernel_gain

    def fused_kernel(self) -> torch.Tensor:
        """``[out, in, k, k, k]``: e3nn's kernel times ``kernel_gain``, plus the self-connection at the centre."""
        eye = torch.eye(self.irreps_in.dim, dtype=self.centre.dtype, device=self.centre.device)
        self_connection = self.sc(eye).T  # [out, in]
        return self.kernel_gain * self.kernel() + self_connection[:, :, None, None, None] * self.centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv3d(x, self.fused_kernel(), **self.kwargs)


class VoxelGate(nn.Module):
    """e3nn's gate on the channel axis of ``[B, S + V + 3V, D, D, D]`` (irreps ``S×0e + V×0e + V×1o``):
    SiLU on the ``S`` scalars, each ``1o`` channel times the sigmoid of its own gate scalar; the
    activations are normalised to unit second moment as in :class:`e3nn.nn.Gate`."""

    def __init__(self, scalars: int, vectors: int):
        super().__init__()
        self.scalars, self.vectors = scalars, vectors
        self.irreps_in = o3.Irreps(f"{scalars}x0e + {vectors}x0e + {vectors}x1o")
        self.irreps_out = o3.Irreps(f"{scalars}x0e + {vectors}x1o")
        self.act_scalars = normalize2mom(nn.functional.silu)
        self.act_gates = normalize2mom(torch.sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, v = self.scalars, self.vectors
        scalars, gates, vectors = x.split([s, v, 3 * v], dim=1)
        gated = vectors.unflatten(1, (v, 3)) * self.act_gates(gates).unsqueeze(2)
        return torch.cat([self.act_scalars(scalars), gated.flatten(1, 2)], dim=1)


class VoxelE3NN(nn.Module):
    """e3nn voxel network ``[B, C, D, D, D] -> [B, C, D, D, D]`` predicting the clean grid, cube-equivariant.

    Args:
        channels: ``C``, density channels (each a ``0e`` scalar field) in and out.
        num_layers: gated hidden convolutions.
        scalar_channels, vector_channels: hidden ``0e`` and ``1o`` channels per voxel.
        sh_lmax: largest degree of the kernels' spherical harmonics.
        diameter: kernel diameter in voxels.
        num_radial_basis: radial basis functions of the kernels.
        fan_in_kernels: scale e3nn's kernels by ``sqrt(taps)``, i.e. normalise the sum over the
            kernel's lattice taps by ``1/sqrt(taps)`` (the usual fan-in scaling, as in e3nn's older
            ``v2103`` voxel convolution) instead of v2104's ``1/taps``. With ``1/taps`` the
            neighbour taps start, and move under Adam's scale-free steps, ``sqrt(taps)`` times
            smaller than the self-connection; on this task that trains markedly slower.
    """

    def __init__(self, channels: int, num_layers: int = 3, scalar_channels: int = 8, vector_channels: int = 4,
                 sh_lmax: int = 2, diameter: float = 3.9, num_radial_basis: int = 4, fan_in_kernels: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        irreps_sh = o3.Irreps.spherical_harmonics(sh_lmax)
        irreps = o3.Irreps(f"{channels}x0e")
        taps = (2 * math.floor(diameter / 2) + 1) ** 3  # lattice offsets of e3nn's kernel
        kernel_gain = math.sqrt(taps) if fan_in_kernels else 1.0
        self.convolutions, self.gates = nn.ModuleList(), nn.ModuleList()
        for _ in range(num_layers):
            gate = VoxelGate(scalar_channels, vector_channels)
            self.convolutions.append(FusedConvolution(irreps, gate.irreps_in, irreps_sh, diameter, num_radial_basis,
                                                      kernel_gain))
            self.gates.append(gate)
            irreps = gate.irreps_out
        self.out = FusedConvolution(irreps, f"{channels}x0e", irreps_sh, diameter, num_radial_basis, kernel_gain)
        with torch.no_grad():  # start from an output of 0, already a fair guess for sparse densities
            self.out.weight.zero_()
            self.out.sc.weight.zero_()

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        h = grid
        for convolution, gate in zip(self.convolutions, self.gates):
            h = gate(convolution(h))
        return self.out(h)
