"""e3nn voxel convolutions (radial x spherical-harmonic kernels, gated 0e + 1o), exactly cube-equivariant."""
from __future__ import annotations

from equibench.task import Task, read_card

from ..voxel_cnn import grid_shape
from .model import VoxelE3NN


def build_model(task: Task, **overrides) -> VoxelE3NN:
    """The e3nn voxel network with the hyperparameters of ``card.yaml`` (or ``overrides``) for the task's grid."""
    card = read_card(__name__)
    hyperparameters = {**card["hyperparameters"], **overrides}
    channels, _ = grid_shape(task)
    model = VoxelE3NN(channels, **hyperparameters)
    model.equivariant = bool(card["equivariant"])
    model.card = hyperparameters
    return model
