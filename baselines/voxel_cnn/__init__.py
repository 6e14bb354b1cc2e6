"""Small 3D U-Net denoiser predicting the clean density grid, not equivariant."""
from __future__ import annotations

from equibench.task import Task, read_card

from .model import VoxelUNet


def build_model(task: Task, **overrides) -> VoxelUNet:
    """The U-Net with the hyperparameters of ``card.yaml`` (or ``overrides``), sized from the task's grid output."""
    card = read_card(__name__)
    hyperparameters = {**card["hyperparameters"], **overrides}
    channels, size = grid_shape(task)
    model = VoxelUNet(channels, size, **hyperparameters)
    model.equivariant = bool(card["equivariant"])
    model.card = hyperparameters
    return model


def grid_shape(task: Task) -> tuple[int, int]:
    """``(C, D)`` of the task's single grid output ``(C, D, D, D)``."""
    grids = [spec for spec in task.outputs if spec.kind == "grid"]
    if len(grids) != 1 or len(grids[0].feature_shape) != 4:
        raise ValueError(f"voxel_cnn needs a task with one grid output of feature shape (C, D, D, D); task "
                         f"{task.name!r} has outputs {[(s.name, s.kind, s.feature_shape) for s in task.outputs]}")
    channels, size = grids[0].feature_shape[:2]
    return channels, size
