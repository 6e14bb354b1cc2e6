"""A small 3D U-Net for voxel denoising: ``clean ≈ UNet(noisy)``.

Levels at resolutions ``D, D/2, ..., D/2^(levels-1)``, each two ``kernel_size³`` convolutions with
GroupNorm and SiLU; max-pooling down, trilinear upsampling up, skip connections by concatenation.
Stride-2 pooling on an even grid is not centred on the grid centre and the kernels are free, so
the network is not rotation-equivariant, not even for the cube group.

The network predicts the clean grid directly rather than the noise (``noisy - UNet``): the grids
are sparse (mean squared density about 0.004) and the task's noise is large (σ = 0.5 per voxel), so
an output near 0 is already a good start, while a residual model starts at the identity's error
``σ² = 0.25`` and must learn to cancel the noise in every voxel. The final 1x1 convolution starts
at a tenth of PyTorch's default scale (bias 0) so that the output starts near 0 but is not
exactly 0 (an untrained model is then still visibly non-equivariant).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def conv_block(channels_in: int, channels_out: int, kernel_size: int) -> nn.Sequential:
    """Two ``kernel_size³`` convolutions (same padding), each followed by GroupNorm and SiLU."""
    pad = kernel_size // 2

    def norm(c: int) -> nn.GroupNorm:
        return nn.GroupNorm(math.gcd(4, c), c)

    return nn.Sequential(nn.Conv3d(channels_in, channels_out, kernel_size, padding=pad), norm(channels_out),
                         nn.SiLU(), nn.Conv3d(channels_out, channels_out, kernel_size, padding=pad),
                         norm(channels_out), nn.SiLU())


class VoxelUNet(nn.Module):
    """U-Net ``[B, C, D, D, D] -> [B, C, D, D, D]`` predicting the clean grid.

    Args:
        channels: ``C``, density channels in and out.
        grid_size: ``D``; must be divisible by ``2^(levels-1)``.
        width: channels at full resolution, doubled at each coarser level.
        kernel_size: odd cubic kernel size.
        levels: number of resolutions.
    """

    def __init__(self, channels: int, grid_size: int, width: int = 16, kernel_size: int = 3, levels: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the grid size, got {kernel_size}")
        if levels < 1 or grid_size % 2 ** (levels - 1):
            raise ValueError(f"grid size {grid_size} must be divisible by 2^(levels-1) = {2 ** (levels - 1)}; "
                             f"use fewer levels (now {levels}) or another grid")
        widths = [width * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        channels_in = channels
        for w in widths:
            self.down.append(conv_block(channels_in, w, kernel_size))
            channels_in = w
        self.up = nn.ModuleList(conv_block(widths[i] + widths[i + 1], widths[i], kernel_size)
                                for i in reversed(range(levels - 1)))
        self.out = nn.Conv3d(widths[0], channels, 1)
        with torch.no_grad():  # start near an output of 0, already a fair guess for sparse densities
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        skips, h = [], grid
        for i, block in enumerate(self.down):
            if i:
                h = nn.functional.max_pool3d(h, 2)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = nn.functional.interpolate(h, size=skip.shape[-3:], mode="trilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return self.out(h)
