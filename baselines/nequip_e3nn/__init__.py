"""NequIP-style e3nn network (Batzner et al. 2022): exactly E(3)-equivariant message passing."""
from __future__ import annotations

from equibench.task import Task

from ..common import PointCloudModel, build_from_card
from .model import NequIPEncoder


def build_model(task: Task, **overrides) -> PointCloudModel:
    """The NequIP encoder with the hyperparameters of ``card.yaml`` (or ``overrides``) and the task's head."""
    return build_from_card(__name__, task, NequIPEncoder, **overrides)
