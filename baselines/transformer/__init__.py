"""Plain transformer over atoms with Cartesian coordinates as input: not rotation-equivariant by construction."""
from __future__ import annotations

from equibench.task import Task

from ..common import PointCloudModel, build_from_card
from .model import AtomTransformerEncoder


def build_model(task: Task, **overrides) -> PointCloudModel:
    """The transformer with the hyperparameters of ``card.yaml`` (or ``overrides``) and the task's head."""
    return build_from_card(__name__, task, AtomTransformerEncoder, **overrides)
