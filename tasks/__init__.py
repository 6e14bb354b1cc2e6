"""Built-in equibench tasks, one sub-package per task (installed as ``equibench_tasks``)."""
