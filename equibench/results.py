"""The results file: one JSON per run, schema-checked and sealed with a content hash.

``write_results`` stamps ``content_hash`` (sha256 of the canonical JSON without that field);
``validate_results`` checks the schema, the hash (so an edited number is caught) and, when the
task is installed, that the file's task version is the current one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_VERSION = 1


class ResultsError(ValueError):
    """A results file that is malformed, tampered with, or stale; the message says which and where."""


def load_schema() -> dict[str, Any]:
    text = resources.files("equibench").joinpath(f"schema/results-v{SCHEMA_VERSION}.json").read_text()
    return json.loads(text)


def content_hash(results: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``results`` without its ``content_hash``."""
    body = {k: v for k, v in results.items() if k != "content_hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def seal(results: dict[str, Any]) -> dict[str, Any]:
    """Replace NaN/inf with null (JSON has none) and stamp the content hash."""
    clean = _finite_or_none(results)
    clean["content_hash"] = content_hash(clean)
    return clean


def write_results(results: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Seal, validate and write atomically (a crash never leaves half a file); returns the sealed dict."""
    sealed = seal(results)
    check_schema(sealed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(sealed, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return sealed


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and fully validate a results file."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: no such file")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from exc
    validate_results(results, source=str(path))
    return results


def check_schema(results: dict[str, Any], source: str = "results") -> None:
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(results), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  at {'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors[:10]]
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise ResultsError(f"{source}: does not match results schema v{SCHEMA_VERSION}:\n" + "\n".join(lines) + more)


def validate_results(results: dict[str, Any], source: str = "results", check_task: bool = True) -> None:
    """Schema, content hash and (if the task is installed) task version; raises :class:`ResultsError`."""
    if not isinstance(results, dict):
        raise ResultsError(f"{source}: top level must be a JSON object")
    if results.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{source}: schema_version {results.get('schema_version')!r} is not supported "
                           f"(this equibench reads version {SCHEMA_VERSION})")
    check_schema(results, source)
    expected = content_hash(results)
    if results["content_hash"] != expected:
        raise ResultsError(f"{source}: content_hash does not match the contents (file was edited after the "
                           f"run wrote it): recorded {results['content_hash']}, computed {expected}")
    if check_task:
        _check_task_version(results, source)


def _check_task_version(results: dict[str, Any], source: str) -> None:
    from .registry import UnknownNameError, load_task_class

    name, version = results["task"]["name"], results["task"]["version"]
    try:
        task_class = load_task_class(name)
    except UnknownNameError as exc:
        raise ResultsError(f"{source}: {exc}") from exc
    if task_class.version != version:
        raise ResultsError(f"{source}: task {name!r} is at version {task_class.version}, the file was made "
                           f"with version {version}; rerun with the current task")


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
