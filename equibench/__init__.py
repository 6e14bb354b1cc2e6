"""equibench: how well, how fast, and at what cost does a molecular model learn 3D rotations?

The flat public API (the runner, CLI and registry are imported on demand):

>>> from equibench import random_rotations, loss_decomposition, probe_equivariance
"""
__version__ = "0.1.0"

from .decomposition import Decomposition, combine, loss_decomposition
from .probe import ProbeResult, Twirled, probe_equivariance, probe_rotations, relative_deviation, twisted_predictions
from .rotations import (cube_rotations, inverse, quaternion_to_matrix, random_rotations, rotate, rotate_grid,
                        rotate_vectors, rotation_angles)
from .task import (Budget, Example, Geometry, OutputSpec, PointCloudGeometry, ProbeSettings, Task,
                   VoxelGeometry, hash_split)

__all__ = [
    "Budget", "Decomposition", "Example", "Geometry", "OutputSpec", "PointCloudGeometry", "ProbeResult",
    "ProbeSettings", "Task", "Twirled", "VoxelGeometry", "combine", "cube_rotations", "hash_split", "inverse",
    "loss_decomposition", "probe_equivariance", "probe_rotations", "quaternion_to_matrix",
    "random_rotations", "relative_deviation", "rotate", "rotate_grid", "rotate_vectors", "rotation_angles",
    "twisted_predictions",
]
