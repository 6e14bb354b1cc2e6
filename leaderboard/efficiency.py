"""The efficiency gap (DESIGN 1.3) and the step at which a model became (nearly) equivariant.

All functions read results dicts (or their ``curve``) only; nothing is re-run.

Definitions
-----------
- **best held-out loss** of a run: the minimum of ``curve[*].metrics.loss`` (the task's combined
  loss on the validation split, evaluated at the log-spaced checkpoints).
- **target loss** of a pair (equivariant run E, non-equivariant run N): the worse of their best
  held-out losses, ``max(best(E), best(N))``, so both runs reach it.
- **time to target** ``t(run)``: cumulative training seconds (``curve[*].train_seconds``; warm-up
  included, evaluation excluded) when the held-out loss first reaches the target. Between two
  checkpoints ``(t0, L0)`` and ``(t1, L1)`` with ``L0 > target >= L1`` the loss is interpolated
  linearly in ``log L`` against ``t``::

      t = t0 + (t1 - t0) * (log L0 - log target) / (log L0 - log L1)

  which is exact for exponentially decaying curves (straight lines on a log-loss axis). If a loss
  is not positive the interpolation is linear in ``L`` instead. Reached at the first checkpoint
  means ``t`` is that checkpoint's ``train_seconds`` (normally 0).
- **efficiency gap** ``t(E) / t(N)``: how many times longer the equivariant model trains to reach
  the same held-out loss (> 1: the equivariant model is slower to get there). Undefined (``None``)
  when ``t(N)`` is 0.
- **throughput ratio** ``samples/s(N) / samples/s(E)`` from ``cost.train_samples_per_second``,
  oriented like the gap (> 1: the equivariant model processes fewer training samples per second).
  ``gap / throughput_ratio`` is then the ratio of training *samples* needed.
- Runs are paired only on the same task, task version, dataset and ``environment.device_name``:
  timings from different devices are never compared.

``step_settled_at_or_below(curve, 0.02)`` is the first checkpoint step from which the relative
equivariance error ``curve[*].decomposition.combined.relative`` stays ``<= 2 %`` (the paper's
threshold); it is a checkpoint step, so the true crossing lies between the previous checkpoint and
this one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

#: the paper's "learned equivariance" threshold on the relative equivariance error
EQUIVARIANCE_THRESHOLD = 0.02

Curve = Sequence[dict[str, Any]]
Results = dict[str, Any]


@dataclass(frozen=True)
class Gap:
    """The efficiency gap of one (equivariant, non-equivariant) pair; times in seconds."""

    target_loss: float
    t_equivariant: float
    t_nonequivariant: float
    gap: float | None
    throughput_ratio: float | None


def _losses(curve: Curve) -> list[tuple[float, float]]:
    """``(train_seconds, loss)`` of the checkpoints that have a finite held-out loss, in step order."""
    points = []
    for point in sorted(curve, key=lambda p: p["step"]):
        loss = (point.get("metrics") or {}).get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            points.append((float(point["train_seconds"]), float(loss)))
    return points


def best_loss(curve: Curve) -> float | None:
    """The lowest held-out loss on the curve (``None`` without any)."""
    losses = [loss for _, loss in _losses(curve)]
    return min(losses) if losses else None


def time_to_loss(curve: Curve, target: float) -> float | None:
    """Training seconds at which the held-out loss first reaches ``target`` (see module docstring);
    ``None`` if it never does."""
    previous = None
    for seconds, loss in _losses(curve):
        if loss <= target:
            if previous is None:
                return seconds
            t0, l0 = previous
            if l0 > 0 and loss > 0 and target > 0:
                fraction = (math.log(l0) - math.log(target)) / (math.log(l0) - math.log(loss))
            else:
                fraction = (l0 - target) / (l0 - loss)
            return t0 + (seconds - t0) * fraction
        previous = (seconds, loss)
    return None


def step_settled_at_or_below(curve: Curve, threshold: float = EQUIVARIANCE_THRESHOLD) -> int | None:
    """The first checkpoint step from which the relative equivariance error stays ``<= threshold`` at every
    later checkpoint; ``None`` if the last checkpoint is above it.

    "Stays" matters: an untrained model whose outputs barely depend on the input reads ~0 at step 0,
    and its error rises as it starts to use the geometry; only falling back below the threshold counts.
    """
    settled = None
    for point in sorted(curve, key=lambda p: p["step"]):
        combined = ((point.get("decomposition") or {}).get("combined") or {})
        relative = combined.get("relative")
        if not isinstance(relative, (int, float)):
            continue
        if relative <= threshold:
            settled = int(point["step"]) if settled is None else settled
        else:
            settled = None
    return settled


def comparable(a: Results, b: Results) -> bool:
    """Same task, task version, dataset and device name: timings may be compared."""
    return (a["task"]["name"], a["task"]["version"], a["task"]["dataset"], a["environment"]["device_name"]) == \
           (b["task"]["name"], b["task"]["version"], b["task"]["dataset"], b["environment"]["device_name"])


def efficiency_gap(equivariant: Results, nonequivariant: Results) -> Gap | None:
    """The gap between an equivariant and a non-equivariant run; ``None`` when a curve has no loss.

    Raises ``ValueError`` when the runs are not an (equivariant, non-equivariant) pair on the same
    task, version, dataset and device.
    """
    if not equivariant["model"]["equivariant"] or nonequivariant["model"]["equivariant"]:
        raise ValueError(f"efficiency_gap needs (equivariant, non-equivariant) runs; got "
                         f"{equivariant['model']['name']!r} (equivariant={equivariant['model']['equivariant']}) and "
                         f"{nonequivariant['model']['name']!r} "
                         f"(equivariant={nonequivariant['model']['equivariant']})")
    if not comparable(equivariant, nonequivariant):
        raise ValueError("runs on different tasks, datasets or devices are never compared: "
                         f"{_where(equivariant)} vs {_where(nonequivariant)}")
    best_e, best_n = best_loss(equivariant["curve"]), best_loss(nonequivariant["curve"])
    if best_e is None or best_n is None:
        return None
    target = max(best_e, best_n)
    t_e, t_n = time_to_loss(equivariant["curve"], target), time_to_loss(nonequivariant["curve"], target)
    if t_e is None or t_n is None:  # cannot happen: both reach their own best, which is <= target
        return None
    speed_e = equivariant["cost"].get("train_samples_per_second")
    speed_n = nonequivariant["cost"].get("train_samples_per_second")
    ratio = speed_n / speed_e if speed_e and speed_n else None
    return Gap(target_loss=target, t_equivariant=t_e, t_nonequivariant=t_n,
               gap=t_e / t_n if t_n > 0 else None, throughput_ratio=ratio)


def paired_gaps(runs: Iterable[Results]) -> list[tuple[int, int, Gap]]:
    """Every comparable (equivariant, non-equivariant) pair among ``runs`` as
    ``(index of the equivariant run, index of the non-equivariant run, gap)``, in index order;
    pairs without a gap (no losses) are left out."""
    runs = list(runs)
    pairs = []
    for i, e in enumerate(runs):
        if not e["model"]["equivariant"]:
            continue
        for j, n in enumerate(runs):
            if n["model"]["equivariant"] or not comparable(e, n):
                continue
            gap = efficiency_gap(e, n)
            if gap is not None:
                pairs.append((i, j, gap))
    return pairs


def _where(results: Results) -> str:
    task = results["task"]
    return f"{task['name']} v{task['version']}/{task['dataset']} on {results['environment']['device_name']!r}"
