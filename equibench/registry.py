"""Finding tasks and models by name.

Tasks come from the ``equibench.tasks`` entry-point group; built-in baselines from
``equibench.baselines``; third-party models from ``equibench.models``. Each entry point names a
``module:attr`` and is imported only when used, so ``equibench list`` stays fast.

``--model`` resolves, in order (DESIGN 3): a baseline name; an entry point in
``equibench.models``; ``path/to/file.py`` or ``file.py:factory``; ``package.module:factory``.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

TASK_GROUP = "equibench.tasks"
BASELINE_GROUP = "equibench.baselines"
MODEL_GROUP = "equibench.models"
DEFAULT_FACTORY = "build_model"


class UnknownNameError(LookupError):
    """A task or model name that does not resolve; the message lists the accepted forms."""


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: how to build it and where it came from (recorded in results)."""

    name: str
    source: str
    factory: Callable[[Any], Any]
    description: str = ""


def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def task_names() -> list[str]:
    return sorted(_entry_points(TASK_GROUP))


def baseline_names() -> list[str]:
    return sorted(_entry_points(BASELINE_GROUP))


def load_task_class(name: str):
    """The task class registered as ``name``."""
    tasks = _entry_points(TASK_GROUP)
    if name not in tasks:
        raise UnknownNameError(f"unknown task {name!r}.{_did_you_mean(name, tasks)} "
                               f"Available tasks: {', '.join(sorted(tasks)) or '(none installed)'}. "
                               "Run `equibench list` to see them.")
    return tasks[name].load()


def resolve_model(name: str) -> ModelSpec:
    """Resolve ``--model`` to a factory ``build_model(task) -> nn.Module``."""
    baselines = _entry_points(BASELINE_GROUP)
    if name in baselines:
        module = baselines[name].load()
        return ModelSpec(name, f"baseline:{baselines[name].value}", _factory_of(module, name),
                         _first_doc_line(module))
    plugins = _entry_points(MODEL_GROUP)
    if name in plugins:
        target = plugins[name].load()
        factory = target if callable(target) and not _is_module(target) else _factory_of(target, name)
        return ModelSpec(name, f"entry-point:{plugins[name].value}", factory, _first_doc_line(target))
    path_part, _, attr = name.partition(":") if not _looks_like_windows_path(name) else (name, "", "")
    if path_part.endswith(".py"):
        return _from_file(Path(path_part), attr or DEFAULT_FACTORY, name)
    if attr and all(part.isidentifier() for part in path_part.split(".")):
        try:
            module = importlib.import_module(path_part)
        except ModuleNotFoundError as exc:
            raise UnknownNameError(f"cannot import module {path_part!r} for --model {name!r}: {exc}") from exc
        return ModelSpec(name, f"module:{name}", _attr(module, attr, name), _first_doc_line(module))
    known = sorted(baselines) + sorted(plugins)
    raise UnknownNameError(
        f"unknown model {name!r}.{_did_you_mean(name, known)}\n"
        "--model accepts:\n"
        f"  a baseline name: {', '.join(sorted(baselines)) or '(none installed)'}\n"
        f"  a model registered under the entry-point group {MODEL_GROUP!r}: {', '.join(sorted(plugins)) or '(none)'}\n"
        "  a file: path/to/my_model.py (uses its build_model) or path/to/my_model.py:factory\n"
        "  a module attribute: package.module:factory")


def _from_file(path: Path, attr: str, name: str) -> ModelSpec:
    if not path.is_file():
        raise UnknownNameError(f"model file {str(path)!r} does not exist (from --model {name!r}); "
                               "give a path to a .py file that defines build_model(task)")
    module_name = f"equibench_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return ModelSpec(path.stem if attr == DEFAULT_FACTORY else f"{path.stem}:{attr}",
                     f"file:{path.resolve()}:{attr}", _attr(module, attr, name), _first_doc_line(module))


def _factory_of(module, name: str):
    return _attr(module, DEFAULT_FACTORY, name)


def _attr(module, attr: str, name: str):
    if not hasattr(module, attr):
        public = [a for a in dir(module) if not a.startswith("_")]
        raise UnknownNameError(f"{module.__name__} has no attribute {attr!r} (from --model {name!r})."
                               f"{_did_you_mean(attr, public)} A model module must define "
                               "build_model(task) -> torch.nn.Module")
    factory = getattr(module, attr)
    if not callable(factory):
        raise UnknownNameError(f"{module.__name__}.{attr} is not callable (from --model {name!r})")
    return factory


def _is_module(obj) -> bool:
    return type(obj).__name__ == "module"


def _looks_like_windows_path(name: str) -> bool:
    return len(name) > 2 and name[1] == ":" and name[2] in "\\/"


def _first_doc_line(obj) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
