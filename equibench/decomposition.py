"""The loss decomposition of Shen et al. (arXiv:2512.02303): how much of a model's held-out loss
is caused by imperfect rotational symmetry.

For an example x with target y, K rotations R_k and the twisted predictions
``f_k = ρ(R_k)^-1 f(R_k x)``:

- ``total``  = E_x E_R ℓ(f_R(x), y)     the loss under random rotation (what augmentation trains)
- ``twirl``  = E_x ℓ(E_R f_R(x), y)     the loss of the symmetrised (twirled) model
- ``equiv``  = total - twirl >= 0        (Jensen, for convex ℓ)
- ``relative`` = equiv / total

Estimators, per example, with ``f̄`` the mean of the K twisted predictions:

- ``mse``: ``equiv`` is the variance of the f_k around f̄; ``K/(K-1)`` times the sample variance is
  unbiased for Haar-random rotations, and ``twirl = total - equiv`` is then unbiased as well.
  With ``exact=True`` (the f_k enumerate a finite group, e.g. the 24 cube rotations) the plain
  variance is the exact answer.
- ``l1``: the plug-in ``twirl = |f̄ - y|``; biased upwards at small K (so ``equiv`` is biased
  down), which is why K is reported with every number.

Per-element losses are summed over the trailing (feature) axes of a row, so a 3-vector
contributes its squared norm; rows are then averaged within an example (e.g. the atoms of one
molecule), and examples are averaged with a standard error over examples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .scatter import scatter_mean

LOSSES = ("mse", "l1")


@dataclass(frozen=True)
class Decomposition:
    """Per-example loss terms, ``[n_examples]`` each, and their summaries.

    ``total_per_example`` and ``equiv_per_example`` are kept so that decompositions of several
    outputs on the same examples can be combined with the task's loss weights.
    """

    total_per_example: torch.Tensor
    equiv_per_example: torch.Tensor
    k: int
    exact: bool
    loss: str

    @property
    def n_examples(self) -> int:
        return int(self.total_per_example.numel())

    @property
    def total(self) -> float:
        return float(self.total_per_example.mean())

    @property
    def equiv(self) -> float:
        return float(self.equiv_per_example.mean())

    @property
    def twirl(self) -> float:
        return self.total - self.equiv

    @property
    def relative(self) -> float:
        return self.equiv / self.total if self.total > 0 else 0.0

    def stderr(self) -> dict[str, float]:
        """Standard errors over examples of total, twirl, equiv, and (delta method) relative."""
        n = self.n_examples
        if n < 2:
            return {"total": math.nan, "twirl": math.nan, "equiv": math.nan, "relative": math.nan}
        t = self.total_per_example.double()
        e = self.equiv_per_example.double()
        cov = torch.cov(torch.stack([t, e]))  # [[var t, cov], [cov, var e]]
        var_t, var_e, cov_te = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
        var_w = var_t + var_e - 2 * cov_te  # twirl = total - equiv
        r = self.relative
        mean_t = self.total
        var_r = (var_e - 2 * r * cov_te + r * r * var_t) / mean_t**2 if mean_t > 0 else math.nan
        return {key: math.sqrt(max(v, 0.0) / n) for key, v in
                {"total": var_t, "twirl": var_w, "equiv": var_e, "relative": var_r}.items()}

    def as_dict(self) -> dict[str, float | int | bool | str]:
        """JSON-ready summary: total, twirl, equiv, relative, their standard errors, K."""
        se = self.stderr()
        return {
            "total": self.total, "twirl": self.twirl, "equiv": self.equiv, "relative": self.relative,
            "total_se": se["total"], "twirl_se": se["twirl"], "equiv_se": se["equiv"],
            "relative_se": se["relative"], "k": self.k, "exact": self.exact, "loss": self.loss,
            "n_examples": self.n_examples,
        }


def loss_decomposition(
    twisted: torch.Tensor,
    target: torch.Tensor,
    loss: str = "mse",
    exact: bool = False,
    example_index: torch.Tensor | None = None,
    n_examples: int | None = None,
) -> Decomposition:
    """Decompose the held-out loss of K twisted predictions into twirl and equivariance parts.

    Args:
        twisted: ``[K, E, *F]`` — prediction k for row e, already rotated back (``ρ(R_k)^-1 f(R_k x)``).
        target: ``[E, *F]`` — the target of each row.
        loss: ``"mse"`` (squared error, unbiased estimator) or ``"l1"`` (plug-in).
        exact: the K predictions enumerate a finite group (all of it): no K/(K-1) correction.
        example_index: ``[E]`` example of each row (e.g. the molecule of each atom); rows of one
            example are averaged. ``None``: each row is an example.
        n_examples: number of examples when ``example_index`` is given (default: max + 1).

    Returns:
        A :class:`Decomposition` with per-example total and equivariance terms.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
    if twisted.dim() < 2 or twisted.shape[1:] != target.shape:
        raise ValueError(f"twisted predictions must be [K, *target.shape] = [K, {list(target.shape)}], "
                         f"got {list(twisted.shape)}")
    k = twisted.shape[0]
    if k < 2:
        raise ValueError(f"need at least K=2 rotations per example to estimate the variance, got K={k}")
    twisted = twisted.double()
    target = target.double().unsqueeze(0)
    mean = twisted.mean(0, keepdim=True)
    if loss == "mse":
        total = (twisted - target).pow(2).mean(0)
        spread = (twisted - mean).pow(2).mean(0)
        equiv = spread if exact else spread * (k / (k - 1))
    else:
        total = (twisted - target).abs().mean(0)
        equiv = total - (mean - target).abs().squeeze(0)
    total_rows, equiv_rows = _sum_features(total), _sum_features(equiv)
    if example_index is not None:
        total_rows = _mean_per_example(total_rows, example_index, n_examples)
        equiv_rows = _mean_per_example(equiv_rows, example_index, n_examples)
    return Decomposition(total_rows, equiv_rows, k=k, exact=exact, loss=loss)


def combine(weighted: dict[str, tuple[float, Decomposition]]) -> Decomposition:
    """The decomposition of a weighted sum of losses ``Σ w_i ℓ_i`` on the same examples.

    ``weighted`` maps an output name to ``(weight, decomposition)``; all decompositions must
    cover the same examples with the same K.
    """
    if not weighted:
        raise ValueError("nothing to combine")
    parts = list(weighted.values())
    first = parts[0][1]
    for name, (_, d) in weighted.items():
        if d.n_examples != first.n_examples or d.k != first.k:
            raise ValueError(f"output {name!r} has {d.n_examples} examples and K={d.k}; "
                             f"expected {first.n_examples} and K={first.k}")
    total = sum(w * d.total_per_example for w, d in parts)
    equiv = sum(w * d.equiv_per_example for w, d in parts)
    loss = first.loss if all(d.loss == first.loss for _, d in parts) else "mixed"
    return Decomposition(total, equiv, k=first.k, exact=all(d.exact for _, d in parts), loss=loss)


def _sum_features(per_element: torch.Tensor) -> torch.Tensor:
    """``[E, *F] -> [E]``: sum the loss over the feature axes of each row."""
    return per_element.reshape(per_element.shape[0], -1).sum(1)


def _mean_per_example(rows: torch.Tensor, example_index: torch.Tensor, n_examples: int | None) -> torch.Tensor:
    """Average row values ``[E]`` within examples: ``[n_examples]``."""
    example_index = example_index.to(rows.device)
    n = int(example_index.max()) + 1 if n_examples is None else n_examples
    if (torch.bincount(example_index, minlength=n) == 0).any():
        raise ValueError("every example needs at least one row; example_index skips some")
    return scatter_mean(rows, example_index, n)
