"""The store of submitted results files: where each file goes, and reading them all back, checked.

Layout (one file per task, model and run; never edited by hand)::

    submissions/<task>/<dataset>/<model>__<aug|noaug>__seed<N>__<short hash>.json
    submissions/<task>/<dataset>/<model>__<aug|noaug>__seed<N>__<short hash>.card.yaml   (optional)

``<short hash>`` is the first 12 hex digits of the file's ``content_hash``; ``<model>`` and
``<dataset>`` are the results' names with characters outside ``[A-Za-z0-9._-]`` replaced by ``-``
(a task without datasets is stored under ``default``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equibench.results import ResultsError, validate_results

from .cards import CardError, check_card, merged_card, read_card_file

PACKAGE_DIR = Path(__file__).resolve().parent
SUBMISSIONS = "submissions"
CARD_SUFFIX = ".card.yaml"


class StoreError(ValueError):
    """A store that holds a file that is invalid, partial, misplaced or duplicated."""


@dataclass(frozen=True)
class StoredRun:
    """One stored results file: its path, its (validated) contents and its merged model card."""

    path: Path
    results: dict[str, Any]
    card: dict[str, Any]


def default_root() -> Path:
    """The repository's ``leaderboard/`` folder in a source checkout (editable install), else
    ``./leaderboard`` under the current directory."""
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return PACKAGE_DIR
    return Path.cwd() / "leaderboard"


def default_store() -> Path:
    return default_root() / SUBMISSIONS


def file_safe(name: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name or "default").strip("-") or "default"


def short_hash(results: dict[str, Any]) -> str:
    return results["content_hash"].split(":", 1)[1][:12]


def run_key(results: dict[str, Any]) -> tuple:
    """What makes a run unique in the store: (task, dataset, model, augmentation, seed)."""
    return (results["task"]["name"], results["task"]["dataset"], results["model"]["name"],
            bool(results["model"]["augmentation"]), results["seed"])


def describe_key(results: dict[str, Any]) -> str:
    task, dataset, model, augmentation, seed = run_key(results)
    return (f"task {task}, dataset {dataset}, model {model}, augmentation {'on' if augmentation else 'off'}, "
            f"seed {seed}")


def relative_path(results: dict[str, Any]) -> Path:
    """Where a results file belongs, relative to the store."""
    task, dataset, model, augmentation, seed = run_key(results)
    name = f"{file_safe(model)}__{'aug' if augmentation else 'noaug'}__seed{seed}__{short_hash(results)}.json"
    return Path(file_safe(task)) / file_safe(dataset) / name


def card_path(results_path: Path) -> Path:
    """The card file beside a stored results file."""
    return results_path.with_name(results_path.name[: -len(".json")] + CARD_SUFFIX)


def stored_files(store: Path) -> list[Path]:
    """Every results file in the store, sorted by path."""
    return sorted(Path(store).glob("*/*/*.json"), key=lambda p: p.relative_to(store).as_posix())


def load_store(store: str | Path) -> list[StoredRun]:
    """Read and check every stored file: schema and content hash, complete, stored where its
    contents say, no duplicates, card consistent. Raises :class:`StoreError` listing every problem.

    The task version is not checked against the installed task, so the leaderboard renders
    without the tasks installed; ``equibench submit`` checked it on the way in.
    """
    store = Path(store)
    runs: list[StoredRun] = []
    problems: list[str] = []
    by_hash: dict[str, Path] = {}
    by_key: dict[tuple, Path] = {}
    for path in stored_files(store):
        rel = path.relative_to(store)
        try:
            results = json.loads(path.read_text())
            validate_results(results, source=str(rel), check_task=False)
        except (ResultsError, json.JSONDecodeError) as exc:
            problems.append(f"{rel}: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc))
            continue
        if not results["status"]["complete"]:
            problems.append(f"{rel}: a partial run ({results['status']['partial_reason']}) cannot be on the "
                            "leaderboard")
        expected = relative_path(results)
        if rel != expected:
            problems.append(f"{rel}: misplaced; its contents belong at {expected.as_posix()}")
        for index, value in ((by_hash, results["content_hash"]), (by_key, run_key(results))):
            if value in index:
                problems.append(f"{rel}: duplicate of {index[value].as_posix()}")
            index.setdefault(value, rel)
        beside = None
        if card_path(path).is_file():
            try:
                beside = read_card_file(card_path(path))
                check_card(beside, results, source=card_path(rel).as_posix())
            except CardError as exc:
                problems.append(str(exc))
        try:
            card = merged_card(results, beside)
        except CardError as exc:
            problems.append(f"{rel}: {exc}")
            continue
        runs.append(StoredRun(path=path, results=results, card=card))
    if problems:
        raise StoreError(f"the leaderboard store {store} has {len(problems)} problem(s):\n  "
                         + "\n  ".join(problems))
    return runs
