"""Model cards: who made a model, where its code is, and what it is, shown on the leaderboard.

A card is a small YAML mapping, all fields optional::

    name: My Model                        # display name (default: the results file's model.name)
    authors: [A. Author, B. Author]       # a list or one string
    code: https://github.com/me/my-model  # http(s) link to the code (the model name links to it)
    paper: https://arxiv.org/abs/...      # http(s) link to a paper
    description: One line on what it is.
    equivariant: false                    # must agree with the results file
    augmentation: true                    # must agree with the results file
    params: 4737                          # must agree with the results file's model.parameters
    hyperparameters: {hidden: 64}         # free-form

It is given at submission (``equibench submit RESULTS.json --card CARD.yaml``) and stored beside
the results file as ``<same name>.card.yaml``; or its fields are embedded in the results file's
``model.card`` (there, keys that are not card fields, such as a baseline's hyperparameters, are
ignored). A card beside the file wins over the embedded one, which wins over the results file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: card field -> accepted Python types
CARD_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "authors": (str, list), "code": (str,), "paper": (str,), "description": (str,),
    "equivariant": (bool,), "augmentation": (bool,), "params": (int,), "hyperparameters": (dict,),
}
#: card field -> where the results file holds the same fact (they must agree)
_CHECKED = {"equivariant": "equivariant", "augmentation": "augmentation", "params": "parameters"}


class CardError(ValueError):
    """A model card that is malformed or contradicts its results file."""


def read_card_file(path: str | Path) -> dict[str, Any]:
    """Parse and type-check a card YAML file (unknown fields are refused: they are usually typos)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CardError(f"{path}: no such card file")
    try:
        card = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(card, dict):
        raise CardError(f"{path}: a model card must be a YAML mapping of fields, got {type(card).__name__}")
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise CardError(f"{path}: unknown card field(s) {', '.join(map(str, unknown))}; "
                        f"a card has: {', '.join(CARD_FIELDS)}")
    _check_types(card, str(path))
    return card


def embedded_card(results: dict[str, Any]) -> dict[str, Any]:
    """The card fields found in the results file's ``model.card`` (other keys ignored)."""
    raw = results["model"].get("card") or {}
    card = {key: value for key, value in raw.items() if key in CARD_FIELDS}
    _check_types(card, "results model.card")
    return card


def check_card(card: dict[str, Any], results: dict[str, Any], source: str = "card") -> None:
    """Raise :class:`CardError` where the card contradicts the results file."""
    for field, key in _CHECKED.items():
        if field in card and card[field] != results["model"][key]:
            raise CardError(f"{source}: {field} is {card[field]!r} but the results file says model.{key} = "
                            f"{results['model'][key]!r}; fix the card")


def merged_card(results: dict[str, Any], beside: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card the leaderboard shows: results fields, overlaid by the embedded card, then the file beside."""
    model = results["model"]
    card: dict[str, Any] = {"name": model["name"], "equivariant": model["equivariant"],
                            "augmentation": model["augmentation"], "params": model["parameters"]}
    if model.get("description"):
        card["description"] = model["description"]
    embedded = embedded_card(results)
    check_card(embedded, results, source="results model.card")
    card.update(embedded)
    card.update(beside or {})
    if isinstance(card.get("authors"), list):
        card["authors"] = ", ".join(map(str, card["authors"]))
    return card


def _check_types(card: dict[str, Any], source: str) -> None:
    for field, value in card.items():
        types = CARD_FIELDS[field]
        # bool is an int in Python: a `params: true` must not pass as a number
        if not isinstance(value, types) or (field == "params" and isinstance(value, bool)):
            want = " or ".join(t.__name__ for t in types)
            raise CardError(f"{source}: card field {field!r} must be {want}, got {value!r}")
    if isinstance(card.get("authors"), list) and not all(isinstance(a, str) for a in card["authors"]):
        raise CardError(f"{source}: card field 'authors' must be a list of strings, got {card['authors']!r}")
    for field in ("code", "paper"):  # they become links on the page: web addresses only
        if field in card and not card[field].startswith(("https://", "http://")):
            raise CardError(f"{source}: card field {field!r} must be an http(s) address, got {card[field]!r}")
