"""Train a model on a task, probe its equivariance on a log-spaced schedule, time it, write results.

One loop serves every task. Each training batch is a pure function of ``(seed, step)``, so a run
resumed from its checkpoint continues exactly where it stopped. After every evaluation the
checkpoint and a partial results file are written (atomically), so an interruption loses at most
the steps since the last evaluation; Ctrl-C saves at the current step.
"""
from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .contract import TaskModel, check_outputs
from .probe import probe_equivariance, probe_rotations
from .registry import ModelSpec, load_task_class, resolve_model
from .results import write_results
from .task import Task
from .timing import Stopwatch, device_name, median_after_warmup, peak_memory, reset_peak_memory

WARMUP_STEPS = 5


class RunError(RuntimeError):
    """A run that cannot start or continue; the message says what to do."""


@dataclass
class RunConfig:
    """Everything that defines a run; the CLI fills it. ``None`` means the task's default."""

    task: str
    model: str
    dataset: str | None = None
    data_dir: str | None = None
    subset: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    out: str = "results"
    augment: bool | None = None
    resume: bool = False
    overwrite: bool = False
    limit: int | None = None
    download: bool = False
    progress: bool = True
    eval_steps: list[int] | None = field(default=None)


def log_spaced_steps(total: int) -> list[int]:
    """Evaluation steps 0, 10, 30, 100, 300, 1000, 3000, ... up to ``total``, and ``total``."""
    steps, decade = [0], 10
    while decade < total:
        steps.append(decade)
        if 3 * decade < total:
            steps.append(3 * decade)
        decade *= 10
    if total not in steps:
        steps.append(total)
    return steps


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {name} asked for CUDA, but torch {torch.__version__} sees no GPU; "
                       "use --device cpu or --device auto")
    return device


def run_name(task: Task, spec: ModelSpec, augment: bool, seed: int) -> str:
    parts = [task.name, task.dataset or "default"]
    if task.subset:
        parts.append(f"subset{task.subset}")
    parts += [spec.name.replace(":", "-").replace("/", "-"), "aug" if augment else "noaug", f"seed{seed}"]
    return "_".join(parts)


class Runner:
    """Holds one run's state; :meth:`run` trains to the budget and returns the results dict."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.device = pick_device(config.device)
        task_class = load_task_class(config.task)
        self.spec = resolve_model(config.model)  # before loading data: a typo should fail fast
        self.task: Task = task_class(dataset=config.dataset, data_dir=config.data_dir, subset=config.subset,
                                     download=config.download)
        default = self.task.budget
        self.budget = replace(default, **{k: v for k, v in
                                          {"steps": config.steps, "batch_size": config.batch_size,
                                           "lr": config.lr}.items() if v is not None})
        torch.manual_seed(config.seed)
        raw_model = self.spec.factory(self.task)
        if not isinstance(raw_model, torch.nn.Module):
            raise RunError(f"build_model of {config.model!r} returned {type(raw_model).__name__}, "
                           "expected a torch.nn.Module")
        self.equivariant = bool(getattr(raw_model, "equivariant", False))
        self.augment = (not self.equivariant) if config.augment is None else config.augment
        self.model = TaskModel(raw_model, self.task).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.budget.lr,
                                          weight_decay=self.budget.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(self.budget.steps, 1), eta_min=self.budget.lr * 0.01)
        self.eval_steps = sorted(set(config.eval_steps or log_spaced_steps(self.budget.steps)))
        self.name = run_name(self.task, self.spec, self.augment, config.seed)
        self.results_path = Path(config.out) / f"{self.name}.json"
        self.checkpoint_path = Path(config.out) / f"{self.name}.ckpt.pt"
        self.step = 0
        self.train_seconds = 0.0
        self.data_seconds = 0.0
        self.step_seconds: list[float] = []
        self.curve: list[dict[str, Any]] = []
        self.probe_seconds: float | None = None

    # --- public ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._load_or_refuse_existing()
        reset_peak_memory(self.device)
        if self.step == 0 and not self.curve:
            self._check_contract()
        try:
            self._train()
        except KeyboardInterrupt:
            self._save_checkpoint()
            self._write(final=None, partial_reason="interrupted")
            raise RunError(f"interrupted at step {self.step}; checkpoint saved to {self.checkpoint_path}. "
                           "Continue with the same command plus --resume") from None
        return self._finish()

    # --- training --------------------------------------------------------------------------
    def _train(self) -> None:
        from tqdm.auto import tqdm

        if self.step == 0 and not self.curve and 0 in self.eval_steps:
            self._evaluate()
        bar = tqdm(total=self.budget.steps, initial=self.step, disable=not self.config.progress,
                   desc=f"{self.task.name}/{self.spec.name}", unit="step", dynamic_ncols=True,
                   mininterval=1.0)
        self.model.train()
        while self.step < self.budget.steps:
            loss = self._train_step()
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if self.step in self.eval_steps:
                self._evaluate()
                last = self.curve[-1]
                bar.set_postfix(val=f"{last['metrics']['loss']:.4g}",
                                rel_equiv=f"{last['decomposition']['combined']['relative']:.2%}")
                self._save_checkpoint()
                self._write(final=None, partial_reason="running")
        bar.close()

    def _train_step(self) -> float:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)
        t0 = time.perf_counter()
        example = self.task.train_batch(self.budget.batch_size, generator, self.augment).to(self.device)
        self.data_seconds += time.perf_counter() - t0
        with Stopwatch(self.device) as watch:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task.loss(self.model(example.inputs), example)
            loss.backward()
            if self.budget.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.budget.grad_clip)
            self.optimizer.step()
            self.schedule.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RunError(f"training loss became {value} at step {self.step}; try a smaller --lr "
                           f"(now {self.budget.lr}) or check the model for divisions by zero")
        self.step_seconds.append(watch.seconds)
        self.train_seconds += watch.seconds
        return value

    def _check_contract(self) -> None:
        example = self.task.train_batch(2, torch.Generator().manual_seed(0), False).to(self.device)
        check_outputs(self.task, self.model(example.inputs), example)

    # --- evaluation ------------------------------------------------------------------------
    def _evaluate(self) -> None:
        self.curve.append({
            "step": self.step, "train_seconds": self.train_seconds,
            "samples_seen": self.step * self.budget.batch_size,
            "metrics": self._metrics("val"), "decomposition": self._probe(),
        })

    def _metrics(self, split: str) -> dict[str, float]:
        sums: dict[str, list[float]] = {}
        self.model.eval()
        checked = False
        with torch.no_grad():
            for n, example in enumerate(self.task.heldout_batches(split, self.budget.batch_size)):
                if self.config.limit is not None and n >= self.config.limit:
                    break
                example = example.to(self.device)
                predictions = self.model(example.inputs)
                if not checked:
                    check_outputs(self.task, predictions, example)
                    checked = True
                terms = dict(self.task.metrics(predictions, example))
                terms["loss"] = (float(self.task.loss(predictions, example)) * example.size, example.size)
                for key, (total, count) in terms.items():
                    acc = sums.setdefault(key, [0.0, 0])
                    acc[0] += total
                    acc[1] += count
        self.model.train()
        return {key: total / count for key, (total, count) in sums.items()}

    def _probe(self) -> dict[str, Any]:
        settings = self.task.probe_settings
        rotations, exact = probe_rotations(settings, device=self.device)
        example = self.task.probe_example().to(self.device)
        self.model.eval()
        with torch.no_grad(), Stopwatch(self.device) as watch:
            result = probe_equivariance(self.model, self.task.geometry, example, self.task.outputs,
                                        rotations, exact=exact)
        self.model.train()
        self.probe_seconds = watch.seconds
        return result.as_dict()

    def _inference_throughput(self) -> float | None:
        """Samples/s of forward passes over test batches, the first batch excluded as warm-up."""
        self.model.eval()
        seconds, samples = 0.0, 0
        with torch.no_grad():
            for n, example in enumerate(self.task.heldout_batches("test", self.budget.batch_size)):
                if n > 20:
                    break
                example = example.to(self.device)
                with Stopwatch(self.device) as watch:
                    self.model(example.inputs)
                if n > 0:
                    seconds += watch.seconds
                    samples += example.size
        self.model.train()
        return samples / seconds if seconds > 0 else None

    # --- finishing -------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        final_metrics = self._metrics("test")
        self.model.eval()
        final_metrics.update(self.task.final_metrics(self.model, self.device, self.config.seed))
        final = {"metrics": final_metrics, "decomposition": self.curve[-1]["decomposition"] if self.curve else None}
        return self._write(final=final, partial_reason=self._partial_reason())

    def _partial_reason(self) -> str | None:
        if self.config.limit is not None:
            return f"--limit {self.config.limit} evaluated only part of the held-out data"
        if self.task.subset:
            return f"--subset {self.task.subset} trained on part of the training data"
        if self.budget.steps < self.task.budget.steps:
            return f"--steps {self.budget.steps} is below the task budget of {self.task.budget.steps}"
        return None

    def _results(self, final: dict | None, partial_reason: str | None) -> dict[str, Any]:
        done = self.step >= self.budget.steps and final is not None
        parameters = sum(p.numel() for p in self.model.model.parameters())
        peak, peak_kind = peak_memory(self.device)
        step_time = median_after_warmup(self.step_seconds, WARMUP_STEPS)
        data_step = self.data_seconds / self.step if self.step else None
        return {
            "schema_version": 1,
            "equibench": {"version": __version__, "git_commit": _git_commit()},
            "task": self.task.describe(),
            "model": {"name": self.spec.name, "source": self.spec.source, "parameters": parameters,
                      "equivariant": self.equivariant, "augmentation": self.augment,
                      "description": self.spec.description,
                      "card": getattr(self.model.model, "card", {}) or {}},
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "device": self.device.type, "device_name": device_name(self.device),
                            "platform": platform.platform(), "threads": torch.get_num_threads()},
            "seed": self.config.seed,
            "budget": {**{k: v for k, v in asdict(self.budget).items() if k != "extras"},
                       "task_default_steps": self.task.budget.steps},
            "probe": asdict(self.task.probe_settings) | {"k": len(probe_rotations(self.task.probe_settings)[0])},
            "curve": self.curve,
            "final": final or {"metrics": {}, "decomposition": None},
            "cost": {
                "train_step_seconds": step_time,
                "train_samples_per_second": self.budget.batch_size / step_time if step_time else None,
                "inference_samples_per_second": self._inference_throughput() if final is not None else None,
                "probe_seconds": self.probe_seconds,
                "data_seconds_per_step": data_step,
                "peak_memory_bytes": peak, "peak_memory_kind": peak_kind,
                "warmup_steps": WARMUP_STEPS, "train_seconds": self.train_seconds,
            },
            "status": {"complete": done and partial_reason is None, "steps_done": self.step,
                       "partial_reason": partial_reason},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "content_hash": "",
        }

    def _write(self, final: dict | None, partial_reason: str | None) -> dict[str, Any]:
        return write_results(self._results(final, partial_reason), self.results_path)

    # --- checkpoints -----------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        state = {
            "step": self.step, "train_seconds": self.train_seconds, "data_seconds": self.data_seconds,
            "step_seconds": self.step_seconds, "curve": self.curve,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "budget": asdict(self.budget),
            "augment": self.augment, "torch_rng": torch.get_rng_state(),
        }
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def _load_or_refuse_existing(self) -> None:
        exists = self.checkpoint_path.exists()
        if exists and self.config.resume:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
            if state["budget"] != asdict(self.budget) or state["augment"] != self.augment:
                raise RunError(f"checkpoint {self.checkpoint_path} was made with budget {state['budget']} and "
                               f"augment={state['augment']}; this run has {asdict(self.budget)} and "
                               f"augment={self.augment}. Resume with the same options, or use --overwrite")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["torch_rng"])
            for key in ("step", "train_seconds", "data_seconds", "step_seconds", "curve"):
                setattr(self, key, state[key])
            print(f"resuming {self.name} from step {self.step}", file=sys.stderr)
        elif exists and not self.config.overwrite:
            raise RunError(f"a run already exists at {self.checkpoint_path}; pass --resume to continue it "
                           "or --overwrite to start again")


def run(config: RunConfig) -> dict[str, Any]:
    """Train and evaluate as configured; returns the results dict (also written to disk)."""
    return Runner(config).run()


def _git_commit() -> str | None:
    """The git commit of the equibench source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
