"""Throughput of every installed baseline on every installed task: one training step, one inference
batch, and the equivariance probe, timed with pytest-benchmark.

Not run by default (the pytest config has ``--benchmark-skip``). Run, save and compare::

    pytest tests/benchmarks --benchmark-only --benchmark-autosave
    pytest tests/benchmarks --benchmark-only --benchmark-compare            # against the last saved run
    pytest tests/benchmarks --benchmark-only --benchmark-compare=0001 --benchmark-compare-fail=mean:10%

Cases are collected from what is installed: tasks (entry-point group ``equibench.tasks``, each on
its default, offline dataset) times baselines (``equibench.baselines``) plus any models named in
``EQUIBENCH_BENCH_MODELS`` (comma-separated ``--model`` specs, e.g. ``examples/my_model.py``). A
baseline whose factory refuses a task (a point-cloud model on a voxel task) is skipped.

Settings (environment): ``EQUIBENCH_BENCH_DEVICE`` (default ``cuda`` when available, else
``cpu``), ``EQUIBENCH_BENCH_BATCH`` (default 8 examples), ``EQUIBENCH_BENCH_ROUNDS`` (default 10)
and ``EQUIBENCH_BENCH_WARMUP`` (default 5 untimed rounds first: some models compile or cache on
their first calls). On CUDA every timed call ends with ``torch.cuda.synchronize``, so a round
measures the kernels, not only their launch. Samples per second = batch size × ops (1 / mean);
each result's ``extra_info`` records task, model, device name, batch size and parameters.
"""
from __future__ import annotations

import os
from importlib.metadata import entry_points

import pytest
import torch

DEVICE = torch.device(os.environ.get("EQUIBENCH_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
BATCH = int(os.environ.get("EQUIBENCH_BENCH_BATCH", "8"))
ROUNDS = int(os.environ.get("EQUIBENCH_BENCH_ROUNDS", "10"))
WARMUP = int(os.environ.get("EQUIBENCH_BENCH_WARMUP", "5"))


def _installed(group: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


TASKS = _installed("equibench.tasks")
MODELS = _installed("equibench.baselines") + [m.strip() for m in os.environ.get("EQUIBENCH_BENCH_MODELS", "").split(",")
                                               if m.strip()]
CASES = [pytest.param(task, model, id=f"{task}-{os.path.basename(model)}") for task in TASKS for model in MODELS]


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


_tasks: dict[str, object] = {}


def _task(name: str):
    """One instance per task and session, on its default (embedded, offline) dataset."""
    from equibench.registry import load_task_class

    if name not in _tasks:
        try:
            _tasks[name] = load_task_class(name)()
        except (FileNotFoundError, ImportError, ValueError) as exc:
            _tasks[name] = exc
    if isinstance(_tasks[name], Exception):
        pytest.skip(f"task {name!r} cannot be loaded here: {_tasks[name]}")
    return _tasks[name]


class Case:
    """A task, a model on ``DEVICE`` with its optimizer, and a fixed training and held-out batch."""

    def __init__(self, task_name: str, model_name: str):
        from equibench.contract import ModelOutputError, TaskModel, check_outputs
        from equibench.registry import resolve_model
        from equibench.timing import device_name

        self.task = task = _task(task_name)
        torch.manual_seed(0)
        try:
            raw = resolve_model(model_name).factory(task)
        except ValueError as exc:  # the baseline does not serve this task's outputs
            pytest.skip(f"{model_name} does not fit task {task_name}: {exc}")
        self.model = TaskModel(raw, task).to(DEVICE)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        augment = not getattr(raw, "equivariant", False)
        self.train = task.train_batch(BATCH, torch.Generator().manual_seed(0), augment).to(DEVICE)
        self.heldout = next(iter(task.heldout_batches("test", BATCH))).to(DEVICE)
        try:
            check_outputs(task, self.model(self.heldout.inputs), self.heldout)
        except ModelOutputError as exc:
            pytest.skip(f"{model_name} does not fit task {task_name}: {exc}")
        self.info = {"task": task_name, "model": model_name, "device": device_name(DEVICE),
                     "batch_size": self.train.size, "parameters": sum(p.numel() for p in raw.parameters())}


def _run(benchmark, kind: str, case: Case, function) -> None:
    benchmark.group = f"{kind} / {case.info['task']}"
    benchmark.extra_info.update(case.info)
    benchmark.pedantic(function, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)


@pytest.mark.parametrize(("task_name", "model_name"), CASES)
def test_train_step(benchmark, task_name, model_name):
    case = Case(task_name, model_name)
    case.model.train()

    def train_step():
        case.optimizer.zero_grad(set_to_none=True)
        loss = case.task.loss(case.model(case.train.inputs), case.train)
        loss.backward()
        case.optimizer.step()
        synchronize()

    _run(benchmark, "train step", case, train_step)


@pytest.mark.parametrize(("task_name", "model_name"), CASES)
def test_inference_batch(benchmark, task_name, model_name):
    case = Case(task_name, model_name)
    case.model.eval()

    def inference():
        with torch.no_grad():
            case.model(case.heldout.inputs)
        synchronize()

    _run(benchmark, "inference", case, inference)


@pytest.mark.parametrize(("task_name", "model_name"), CASES)
def test_equivariance_probe(benchmark, task_name, model_name):
    """The task's probe (its K rotations or the cube group) on one held-out batch of ``BATCH`` examples."""
    from equibench.probe import probe_equivariance, probe_rotations

    case = Case(task_name, model_name)
    case.model.eval()
    rotations, exact = probe_rotations(case.task.probe_settings, device=DEVICE)
    case.info["probe_rotations"] = int(rotations.shape[0])

    def probe():
        with torch.no_grad():
            probe_equivariance(case.model, case.task.geometry, case.heldout, case.task.outputs, rotations, exact=exact)
        synchronize()

    _run(benchmark, "probe", case, probe)


@pytest.mark.parametrize(("task_name", "model_name"), CASES)
def test_k_plain_forward_passes(benchmark, task_name, model_name):
    """The reference for the probe's cost: K + 1 separate forward passes over rotated copies of the
    same held-out batch (what a loop over rotations would run). Compare with ``probe / <task>``."""
    from equibench.probe import probe_rotations

    case = Case(task_name, model_name)
    case.model.eval()
    rotations, _ = probe_rotations(case.task.probe_settings, device=DEVICE)
    copies = [case.task.geometry.twist_inputs(case.heldout.inputs, r[None]) for r in rotations]
    copies.append(case.heldout.inputs)

    def loop():
        with torch.no_grad():
            for inputs in copies:
                case.model(inputs)
        synchronize()

    _run(benchmark, "probe", case, loop)
