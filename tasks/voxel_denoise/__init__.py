"""Voxel denoising task: QM9 per-element Gaussian densities on a grid, noisy input, clean target.

Metrics: ``mse`` (per voxel, density units with a lone-atom peak of 1) and ``psnr`` (dB) on the
test molecules; the loss is the mse per voxel. The equivariance probe uses the 24 cube rotations
(exact on grids); its loss decomposition sums the squared error over each grid's voxels, so its
``total`` is a per-grid sum while its ``relative`` share is scale-free.
"""
from .render import GridSpec, render
from .task import VoxelDenoiseTask

__all__ = ["GridSpec", "VoxelDenoiseTask", "render"]
