"""Checking that a model keeps the task's output contract, with errors that say what is wrong."""
from __future__ import annotations

import torch

from .task import Example, Task


class ModelOutputError(ValueError):
    """A model output that is missing, mis-shaped or not finite; the message names the output."""


def as_output_dict(task: Task, raw) -> dict[str, torch.Tensor]:
    """Accept a dict of outputs, or a bare tensor when the task has exactly one output (voxels)."""
    if isinstance(raw, dict):
        return raw
    if torch.is_tensor(raw) and len(task.outputs) == 1:
        return {task.outputs[0].name: raw}
    expected = ", ".join(f"{s.name!r}" for s in task.outputs)
    raise ModelOutputError(f"model returned {type(raw).__name__}; task {task.name!r} expects a dict with "
                           f"keys {expected}")


def expected_shape(task: Task, name: str, example: Example) -> tuple[int, ...]:
    spec = task.output_spec(name)
    if spec.level == "node":
        rows = example.inputs.num_nodes
    elif spec.level == "graph":
        rows = example.inputs.num_graphs
    else:
        rows = example.size
    return (rows, *spec.feature_shape)


def check_outputs(task: Task, predictions: dict[str, torch.Tensor], example: Example) -> None:
    """Raise :class:`ModelOutputError` on a missing key, a wrong shape or a NaN/inf value."""
    for spec in task.outputs:
        if spec.name not in predictions:
            raise ModelOutputError(f"model output is missing {spec.name!r} (task {task.name!r} expects "
                                   f"{[s.name for s in task.outputs]}; got {sorted(predictions)})")
        value = predictions[spec.name]
        want = expected_shape(task, spec.name, example)
        if not torch.is_tensor(value) or tuple(value.shape) != want:
            got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ModelOutputError(f"model output {spec.name!r} has shape {got}, expected {want} "
                                   f"({spec.level}-level {spec.kind}, feature shape {spec.feature_shape})")
        if not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise ModelOutputError(f"model output {spec.name!r} has {bad} non-finite values (NaN or inf) "
                                   f"of {value.numel()}")


class TaskModel(torch.nn.Module):
    """Wraps a user model so that it always returns the task's output dict."""

    def __init__(self, model: torch.nn.Module, task: Task):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, inputs) -> dict[str, torch.Tensor]:
        return as_output_dict(self.task, self.model(inputs))
