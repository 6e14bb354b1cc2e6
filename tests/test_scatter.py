"""Per-group sums, means and centring against direct loops."""
import torch

from equibench.scatter import centre_per_group, scatter_mean, scatter_sum


def test_sum_and_mean_match_a_loop_and_empty_groups_read_zero():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    index = torch.tensor([0, 0, 2, 2, 2, 3, 0])
    sums, means = scatter_sum(values, index, 4), scatter_mean(values, index, 4)
    for group in range(4):
        rows = values[index == group]
        assert torch.allclose(sums[group], rows.sum(0))
        assert torch.allclose(means[group], rows.mean(0) if len(rows) else torch.zeros(3, dtype=torch.float64))


def test_centre_per_group_removes_each_mean():
    gen = torch.Generator().manual_seed(1)
    pos = torch.randn(9, 3, generator=gen, dtype=torch.float64) + 3.0
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    centred = centre_per_group(pos, batch, 3)
    assert scatter_sum(centred, batch, 3).abs().max() < 1e-12
    assert torch.allclose(centred[1] - centred[0], pos[1] - pos[0])  # a translation within each group
