"""QM9 flow-matching task: positions and atom types of QM9 molecules, EDM split and sample metrics.

Metrics: held-out flow-matching ``loss`` (fixed noise and times), ``pos_velocity_mse`` (Å²
per atom), ``type_velocity_mse``, and at the end the EDM sample quality of generated molecules.
"""
from .task import QM9FlowTask

__all__ = ["QM9FlowTask"]
