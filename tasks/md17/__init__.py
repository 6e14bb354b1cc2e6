"""MD17 force-field task: energy and forces from rMD17, original MD17, or embedded GFN2-xTB frames.

Metrics: ``energy_mae`` in meV and ``forces_mae`` in meV/Å (per component) on the test frames.
"""
from .task import MD17Task

__all__ = ["MD17Task"]
