"""The equivariance probe: K twisted predictions of a model in one batched forward pass.

For held-out inputs x and rotations R_1..R_K, the probe builds one batch holding the identity
copy and the K rotated copies, runs the model once, rotates each output back
(``f_k = ρ(R_k)^-1 f(R_k x)``) and reports, per output and for the task's combined loss:

- the loss decomposition (:func:`equibench.decomposition.loss_decomposition`);
- the conventional relative output deviation ``E ||f(R x) - ρ(R) f(x)|| / E ||f(x)||``, norms
  taken over each example's output (comparable with e3nn/escnn-style equivariance testers).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .decomposition import Decomposition, combine, loss_decomposition
from .rotations import cube_rotations, random_rotations
from .scatter import scatter_sum
from .task import Example, Geometry, OutputSpec, ProbeSettings


@dataclass(frozen=True)
class ProbeResult:
    """Decomposition per output and combined, plus relative output deviation per output."""

    per_output: dict[str, Decomposition]
    combined: Decomposition
    deviation: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "combined": self.combined.as_dict(),
            "outputs": {name: {**d.as_dict(), "relative_deviation": self.deviation[name]}
                        for name, d in self.per_output.items()},
        }


def probe_rotations(settings: ProbeSettings, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, bool]:
    """The probe's rotations ``[K, 3, 3]`` and whether they enumerate a finite group exactly."""
    if settings.group == "cube":
        return cube_rotations(dtype=dtype, device=device), True
    generator = torch.Generator().manual_seed(settings.seed)
    return random_rotations(settings.k, generator=generator, dtype=dtype, device=device), False


def twisted_predictions(model: torch.nn.Module, geometry: Geometry, inputs, outputs: tuple[OutputSpec, ...],
                        rotations: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Run ``model`` once on the identity copy plus K rotated copies of ``inputs``.

    Returns ``(twisted, plain)``: ``twisted[name]`` is ``[K, E, *F]`` (rotated back), ``plain[name]``
    the untransformed prediction ``[E, *F]``.
    """
    identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device).unsqueeze(0)
    with_identity = torch.cat([identity, rotations])
    predictions = model(geometry.twist_inputs(inputs, with_identity))
    twisted, plain = {}, {}
    for spec in outputs:
        if spec.name not in predictions:
            raise KeyError(f"model output is missing {spec.name!r}; it returned {sorted(predictions)}")
        stacked = geometry.untwist_output(predictions[spec.name], spec, with_identity, inputs)
        plain[spec.name], twisted[spec.name] = stacked[0], stacked[1:]
    return twisted, plain


def probe_equivariance(model: torch.nn.Module, geometry: Geometry, example: Example,
                       outputs: tuple[OutputSpec, ...], rotations: torch.Tensor, exact: bool = False,
                       loss: str = "mse") -> ProbeResult:
    """Decompose ``model``'s loss on ``example`` into twirl and equivariance parts.

    Args:
        model: maps inputs to ``{name: tensor}``; called once, on ``(K+1) * size`` examples.
        geometry: how rotations act on inputs and outputs.
        example: held-out inputs and targets.
        outputs: the outputs to decompose, with their combined-loss weights.
        rotations: ``[K, 3, 3]``.
        exact: the rotations enumerate a finite group.
    """
    twisted, plain = twisted_predictions(model, geometry, example.inputs, outputs, rotations)
    per_output: dict[str, Decomposition] = {}
    deviation: dict[str, float] = {}
    for spec in outputs:
        index = geometry.example_index(spec, example.inputs)
        per_output[spec.name] = loss_decomposition(
            twisted[spec.name].detach(), example.targets[spec.name], loss=loss, exact=exact,
            example_index=index, n_examples=example.size if index is not None else None)
        deviation[spec.name] = relative_deviation(twisted[spec.name].detach(), plain[spec.name].detach(),
                                                  index, example.size)
    combined = combine({s.name: (s.loss_weight, per_output[s.name]) for s in outputs})
    return ProbeResult(per_output, combined, deviation)


def relative_deviation(twisted: torch.Tensor, plain: torch.Tensor, example_index: torch.Tensor | None,
                       n_examples: int) -> float:
    """``E_x,R ||f_R(x) - f(x)|| / E_x ||f(x)||`` with norms over each example's output.

    ``||ρ(R)^-1 f(R x) - f(x)|| = ||f(R x) - ρ(R) f(x)||`` since ρ(R) is orthogonal.
    """
    diff_sq = (twisted - plain.unsqueeze(0)).double().pow(2)
    diff_sq = diff_sq.reshape(diff_sq.shape[0], diff_sq.shape[1], -1).sum(-1)  # [K, E]
    plain_sq = plain.double().pow(2).reshape(plain.shape[0], -1).sum(-1)  # [E]
    if example_index is not None:
        diff_sq = scatter_sum(diff_sq.T, example_index, n_examples).T
        plain_sq = scatter_sum(plain_sq, example_index, n_examples)
    denominator = plain_sq.sqrt().mean()
    return float(diff_sq.sqrt().mean() / denominator) if denominator > 0 else 0.0


class Twirled(torch.nn.Module):
    """The test-time symmetrised model ``f̄(x) = mean_k ρ(R_k)^-1 f(R_k x)`` (one batched pass).

    With the 24 cube rotations on grids this is exactly cube-equivariant; with K Haar-random
    rotations it is the Monte Carlo twirl the decomposition's ``twirl`` term scores.
    """

    def __init__(self, model: torch.nn.Module, geometry: Geometry, outputs: tuple[OutputSpec, ...],
                 rotations: torch.Tensor):
        super().__init__()
        self.model, self.geometry, self.outputs = model, geometry, outputs
        self.register_buffer("rotations", rotations)

    def forward(self, inputs) -> dict[str, torch.Tensor]:
        twisted, _ = twisted_predictions(self.model, self.geometry, inputs, self.outputs, self.rotations)
        return {name: value.mean(0) for name, value in twisted.items()}
