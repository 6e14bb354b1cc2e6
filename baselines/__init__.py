"""Built-in equibench baselines, one sub-package per model (installed as ``equibench_baselines``)."""
