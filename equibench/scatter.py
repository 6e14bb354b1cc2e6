"""Per-molecule sums, means and centring in plain torch (no torch-scatter needed).

Rows of a flat batch (atoms, or rows of an output) belong to groups (molecules, examples) by an
``index`` ``[N]`` with values in ``0..n_groups-1``; tasks, baselines and the probe all use these.
"""
from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Sum the rows of ``src`` ``[N, ...]`` per group: ``[n_groups, ...]``."""
    return src.new_zeros(n_groups, *src.shape[1:]).index_add_(0, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean of the rows of ``src`` ``[N, ...]`` per group: ``[n_groups, ...]`` (0 for an empty group)."""
    count = torch.bincount(index, minlength=n_groups).clamp(min=1).to(src.dtype)
    return scatter_sum(src, index, n_groups) / count.reshape(-1, *([1] * (src.dim() - 1)))


def centre_per_group(values: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``values`` ``[N, ...]`` minus the mean of their group: e.g. positions with zero centre per molecule."""
    return values - scatter_mean(values, index, n_groups)[index]
