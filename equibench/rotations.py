"""Rotations in SO(3) and how they act on the values a molecular model sees and predicts.

This is the one implementation of "rotate this": augmentation, the equivariance probe and the
tests all call it. Conventions:

- A rotation is a ``[3, 3]`` matrix ``R`` with ``R^T R = I`` and ``det R = +1``; a batch of them
  is ``[K, 3, 3]``.
- Vectors and coordinates are rows, ``[..., 3]``; rotating them computes ``R v`` for every row,
  i.e. ``v @ R^T``.
- A voxel grid is ``[B, C, D, D, D]`` whose last three axes are x, y, z, sampled at points
  symmetric about the grid centre. Rotating a grid is ``(R·g)(x) = g(R^T x)``; it is exact (no
  interpolation) for the 24 rotations of the cube, which map the sample points onto each other.
- Invariant values (energies, atom types, logits) are unchanged.
"""
from __future__ import annotations

import itertools
from typing import Literal

import torch

Kind = Literal["scalar", "vector", "grid"]
KINDS: tuple[str, ...] = ("scalar", "vector", "grid")


def random_rotations(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``n`` Haar-uniform rotations, ``[n, 3, 3]``.

    Uses unit quaternions from a normalised 4D Gaussian, which are uniform on S^3 and so give
    the Haar measure on SO(3). Sampling happens on the generator's device (CPU by default) in
    float64, so the same seed gives the same rotations whatever ``dtype`` and ``device`` are.
    """
    if n < 0:
        raise ValueError(f"number of rotations must be >= 0, got {n}")
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64,
                    device=generator.device if generator is not None else "cpu")
    q = q / q.norm(dim=1, keepdim=True)
    return quaternion_to_matrix(q).to(dtype=dtype, device=device)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[..., 4]`` (w, x, y, z) to rotation matrices ``[..., 3, 3]``."""
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def rotation_angles(rotations: torch.Tensor) -> torch.Tensor:
    """Rotation angle in radians, ``[K]``, of each rotation ``[K, 3, 3]``."""
    trace = rotations.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.arccos(((trace - 1) / 2).clamp(-1.0, 1.0))


def cube_rotations(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The 24 proper rotations of the cube, ``[24, 3, 3]``, identity first.

    They are the signed permutation matrices with determinant +1; as a set they form a group
    (the rotation group of the cube, isomorphic to S4).
    """
    matrices = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = torch.zeros(3, 3, dtype=torch.float64)
            for row, (col, sign) in enumerate(zip(perm, signs)):
                m[row, col] = sign
            if torch.linalg.det(m) > 0:
                matrices.append(m)
    return torch.stack(matrices).to(dtype=dtype, device=device)


def rotate_vectors(vectors: torch.Tensor, rotation: torch.Tensor,
                   index: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate row vectors ``[N, ..., 3]``.

    ``rotation`` is one matrix ``[3, 3]`` applied to every row, or ``[M, 3, 3]`` together with
    ``index`` ``[N]`` (values in ``0..M-1``) saying which rotation acts on each row: e.g. one
    rotation per molecule with ``index = batch``.
    """
    if vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have a last axis of size 3, got shape {tuple(vectors.shape)}")
    rotation = rotation.to(vectors.dtype)
    if rotation.dim() == 2:
        return vectors @ rotation.transpose(-1, -2)
    if index is None:
        raise ValueError("a stack of rotations [M, 3, 3] needs `index` mapping each row to one of them")
    per_row = rotation[index]  # [N, 3, 3]
    return torch.einsum("nij,n...j->n...i", per_row, vectors)


def rotate_grid(grid: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate voxel grids ``[..., D, D, D]`` exactly by one cube rotation ``[3, 3]``.

    Computes ``g'[n] = g[R^T n]`` on centred voxel indices ``n``: a flip of some axes followed by
    a permutation of the three spatial axes, so no value is interpolated.
    """
    perm, signs = _as_signed_permutation(rotation)
    spatial = grid.dim() - 3
    if grid.shape[-3] != grid.shape[-2] or grid.shape[-2] != grid.shape[-1]:
        raise ValueError(f"grid must be cubic in its last three axes, got shape {tuple(grid.shape)}")
    flip_axes = [spatial + a for a in range(3) if signs[a] < 0]
    flipped = grid.flip(flip_axes) if flip_axes else grid
    # output spatial axis b reads input axis a with perm[a] == b
    inverse = [perm.index(b) for b in range(3)]
    order = list(range(spatial)) + [spatial + a for a in inverse]
    return flipped.permute(order)


def _as_signed_permutation(rotation: torch.Tensor) -> tuple[list[int], list[int]]:
    """For a cube rotation, ``perm[a]`` is the row b with ``R[b, a] != 0`` and ``signs[a]`` its sign."""
    r = rotation.detach().to("cpu", torch.float64)
    if r.shape != (3, 3):
        raise ValueError(f"rotate_grid takes one rotation [3, 3], got shape {tuple(r.shape)}")
    rounded = r.round()
    if not torch.allclose(r, rounded, atol=1e-6) or (rounded.abs().sum(0) != 1).any() \
            or (rounded.abs().sum(1) != 1).any():
        raise ValueError("rotate_grid is exact only for the 24 cube rotations (signed permutation "
                         "matrices, see cube_rotations()); rotate coordinates before rendering instead")
    perm = [int(rounded[:, a].abs().argmax()) for a in range(3)]
    signs = [int(rounded[perm[a], a]) for a in range(3)]
    return perm, signs


def rotate(value: torch.Tensor, rotation: torch.Tensor, kind: Kind,
           index: torch.Tensor | None = None) -> torch.Tensor:
    """Act with ``rotation`` on ``value`` of the given kind: ``scalar`` (unchanged), ``vector``
    (rows ``[..., 3]``, see :func:`rotate_vectors`) or ``grid`` (see :func:`rotate_grid`)."""
    if kind == "scalar":
        return value
    if kind == "vector":
        return rotate_vectors(value, rotation, index)
    if kind == "grid":
        return rotate_grid(value, rotation)
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def inverse(rotation: torch.Tensor) -> torch.Tensor:
    """Inverse of rotations ``[..., 3, 3]``: the transpose."""
    return rotation.transpose(-1, -2)
