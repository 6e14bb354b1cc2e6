"""EGNN (Satorras, Hoogeboom & Welling 2021): exactly E(n)-equivariant graph network on coordinates."""
from __future__ import annotations

from equibench.task import Task

from ..common import PointCloudModel, build_from_card
from .model import EGNNEncoder


def build_model(task: Task, **overrides) -> PointCloudModel:
    """The EGNN encoder with the hyperparameters of ``card.yaml`` (or ``overrides``) and the task's head."""
    return build_from_card(__name__, task, EGNNEncoder, **overrides)
