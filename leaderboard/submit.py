"""Submitting a results file: every check the leaderboard relies on, then a copy into the store.

A file is accepted when
1. it matches the results schema, its content hash matches its contents (no edits after the run)
   and its task version is the installed task's (:func:`equibench.results.validate_results`);
2. the run is complete (``status.complete``; a partial run is refused with its ``partial_reason``);
3. its model card, if any, agrees with it (see :mod:`.cards`);
4. neither the same file (content hash) nor another run with the same task, dataset, model,
   augmentation and seed is already stored;
5. its split hash is the installed task's split for that dataset (the task is instantiated, which
   needs the dataset's files: pass ``data_dir`` for real data that is not in the cache).
The file is then stored byte for byte, so its content hash still holds.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from equibench.results import ResultsError, validate_results

from .cards import CardError, check_card, merged_card, read_card_file
from .store import card_path, describe_key, relative_path, run_key, stored_files


class SubmissionError(ValueError):
    """A results file the leaderboard refuses; the message says why and what to do."""


def check_complete(results: dict[str, Any], source: str) -> None:
    status = results["status"]
    if not status["complete"]:
        raise SubmissionError(f"{source}: the run is partial ({status['partial_reason'] or 'not finished'}); "
                              "the leaderboard takes complete runs only: rerun with the task's full budget "
                              "and data (no --steps below the budget, --subset or --limit)")


def check_not_stored(results: dict[str, Any], store: Path, source: str) -> None:
    key = run_key(results)
    for path in stored_files(store):
        try:
            other = json.loads(path.read_text())
            same_hash, same_key = other["content_hash"] == results["content_hash"], run_key(other) == key
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a broken stored file is the renderer's to report, not a duplicate
        rel = path.relative_to(store).as_posix()
        if same_hash:
            raise SubmissionError(f"{source}: duplicate: this exact file is already stored as {rel}")
        if same_key:
            raise SubmissionError(f"{source}: duplicate: a run with the same {describe_key(results)} is already "
                                  f"stored as {rel}; submit another seed, or remove the stored file in a "
                                  "reviewed change")


def check_split(results: dict[str, Any], data_dir: str | None, source: str) -> None:
    """The installed task, instantiated on the file's dataset, must have the file's split hash."""
    from equibench.registry import load_task_class

    task = results["task"]
    where = f"task {task['name']!r} dataset {task['dataset']!r}"
    task_class = load_task_class(task["name"])  # validate_results already made sure it is installed
    try:
        instance = task_class(dataset=task["dataset"], data_dir=data_dir, subset=task["subset"])
    except FileNotFoundError as exc:
        raise SubmissionError(f"{source}: cannot check the split of {where}: its data is not available on this "
                              f"machine ({exc}). Pass --data-dir with the data files and submit again") from exc
    except ValueError as exc:
        raise SubmissionError(f"{source}: the installed task cannot load {where}: {exc}") from exc
    expected = instance.split_hash()
    if task["split_hash"] != expected:
        raise SubmissionError(f"{source}: split hash mismatch for {where}: the file has {task['split_hash']}, the "
                              f"installed task (v{task_class.version}) has {expected}. The run used other "
                              "train/val/test indices (or other data); rerun it with the installed task")


def submit(results_path: str | Path, store: str | Path, card: str | Path | None = None,
           data_dir: str | None = None, dry_run: bool = False) -> Path:
    """Check ``results_path`` (and ``card``) and copy them into ``store``; returns the stored path.

    Raises :class:`SubmissionError` naming the first failed check. With ``dry_run`` nothing is
    written; the returned path is where the file would go.
    """
    source = str(results_path)
    store = Path(store)
    if not Path(results_path).is_file():
        raise SubmissionError(f"{source}: no such file")
    raw = Path(results_path).read_bytes()  # what is checked is what is stored
    try:
        results = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{source}: not valid JSON ({exc})") from exc
    try:
        validate_results(results, source=source)
    except ResultsError as exc:
        raise SubmissionError(str(exc)) from exc
    check_complete(results, source)
    card_text = None
    try:
        if card is not None:
            card_text = Path(card).read_text() if Path(card).is_file() else None
            check_card(read_card_file(card), results, source=str(card))
        merged_card(results)  # the embedded card must agree too
    except CardError as exc:
        raise SubmissionError(str(exc)) from exc
    check_not_stored(results, store, source)
    check_split(results, data_dir, source)
    target = store / relative_path(results)
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
        if card_text is not None:
            card_path(target).write_text(card_text)
    return target
