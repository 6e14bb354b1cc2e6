"""Render molecules as per-element Gaussian densities on a cubic voxel grid (VoxMol style).

For element channel ``c`` the density at a sample point ``x`` is

    ρ_c(x) = Σ_{atoms a of element c} exp(-|x - r_a|² / (2 σ²)),

so a lone atom on a sample point has peak value 1. The grid has ``D`` sample points per axis at
``(i - (D - 1) / 2) · h`` Å for ``i = 0..D-1`` along x, y and z (axes 2, 3, 4 of the
``[B, C, D, D, D]`` output): symmetric about the origin, which is the convention of
:func:`equibench.rotations.rotate_grid`, so rendering coordinates rotated by a cube rotation gives
the rotated grid of the unrotated rendering (up to float round-off of the product order).

The Gaussian factorises over axes, ``exp(-|x - r|²/2σ²) = g(x - r_x) g(y - r_y) g(z - r_z)``;
the renderer evaluates the three 1D profiles per atom, forms their outer product ``[N, D, D, D]``
and adds each atom into its (molecule, channel) slot with one ``index_add_``: no Python loop over
atoms or molecules. Work and memory are ``O(N · D³)`` for ``N`` atoms in the batch; batches with
more atoms are processed in chunks of at most ``max_atom_voxels`` atom-voxel products.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: atomic numbers of the density channels, in channel order (H, C, N, O, F)
ELEMENTS: tuple[int, ...] = (1, 6, 7, 8, 9)
ELEMENT_SYMBOLS: tuple[str, ...] = ("H", "C", "N", "O", "F")


@dataclass(frozen=True)
class GridSpec:
    """A cubic sampling grid centred on the origin.

    Attributes:
        size: ``D``, sample points per axis.
        spacing: ``h``, distance between neighbouring sample points, Å.
        sigma: width ``σ`` of each atom's Gaussian, Å.
        elements: atomic numbers of the channels, in channel order.
    """

    size: int = 16
    spacing: float = 0.5
    sigma: float = 0.5
    elements: tuple[int, ...] = ELEMENTS

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"grid size must be >= 1, got {self.size}")
        if self.spacing <= 0 or self.sigma <= 0:
            raise ValueError(f"grid spacing and sigma must be > 0 Å, got {self.spacing} and {self.sigma}")

    @property
    def channels(self) -> int:
        return len(self.elements)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, D, D, D)``: the shape of one molecule's grid."""
        return (self.channels, self.size, self.size, self.size)

    @property
    def half_width(self) -> float:
        """Largest sample coordinate, Å: points span ``[-half_width, half_width]`` on each axis."""
        return (self.size - 1) / 2 * self.spacing

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """Sample coordinates along one axis, ``[D]`` Å, ``(i - (D - 1)/2) · h``."""
        index = torch.arange(self.size, dtype=torch.float64, device=device)
        return ((index - (self.size - 1) / 2) * self.spacing).to(dtype)


def element_channels(z: torch.Tensor, elements: tuple[int, ...] = ELEMENTS) -> torch.Tensor:
    """Channel index ``[N]`` (long) of each atomic number in ``z`` ``[N]``; raises on unknown elements."""
    table = torch.full((max(max(elements), int(z.max()) if z.numel() else 0) + 1,), -1, dtype=torch.long,
                       device=z.device)
    table[torch.as_tensor(elements, device=z.device)] = torch.arange(len(elements), device=z.device)
    channel = table[z.long()]
    if (channel < 0).any():
        unknown = sorted(set(z[channel < 0].tolist()))
        raise ValueError(f"atomic numbers {unknown} have no density channel; channels are {elements}")
    return channel


def render(z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor, n_molecules: int,
           grid: GridSpec = GridSpec(), max_atom_voxels: int = 2**25) -> torch.Tensor:
    """Per-element Gaussian densities of a batch of molecules.

    Args:
        z: atomic numbers ``[N]`` (any integer dtype), each one of ``grid.elements``.
        pos: positions ``[N, 3]``, Å, in the grid's frame (the grid centre is the origin; centre
            molecules first with :func:`equibench.scatter.centre_per_group`). Its dtype is the output dtype.
        batch: molecule index of each atom ``[N]``, values in ``0..n_molecules-1``.
        n_molecules: ``B``.
        grid: grid size, spacing and Gaussian width.
        max_atom_voxels: chunk size bound on the ``[atoms, D, D, D]`` outer product.

    Returns:
        ``[B, C, D, D, D]`` densities (dimensionless; a lone atom on a sample point peaks at 1).
    """
    if pos.dim() != 2 or pos.shape[-1] != 3 or z.shape != pos.shape[:1] or batch.shape != pos.shape[:1]:
        raise ValueError(f"need z [N], pos [N, 3] and batch [N]; got {tuple(z.shape)}, {tuple(pos.shape)} "
                         f"and {tuple(batch.shape)}")
    d, c = grid.size, grid.channels
    slot = batch.long() * c + element_channels(z, grid.elements)  # [N] row of the flat output
    points = grid.points(pos.dtype, pos.device)
    out = pos.new_zeros(n_molecules * c, d * d * d)
    chunk = max(1, max_atom_voxels // (d * d * d))
    for start in range(0, pos.shape[0], chunk):  # one pass unless the batch is huge
        p = pos[start:start + chunk]
        profile = torch.exp(-(points - p.unsqueeze(-1)).pow(2) / (2 * grid.sigma**2))  # [n, 3, D]
        density = profile[:, 0, :, None, None] * profile[:, 1, None, :, None] * profile[:, 2, None, None, :]
        out.index_add_(0, slot[start:start + chunk], density.reshape(-1, d * d * d))
    return out.reshape(n_molecules, c, d, d, d)
