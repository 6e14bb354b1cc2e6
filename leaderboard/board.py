"""What the leaderboard shows: one section per task, task version and dataset, each with a table
of runs and a table of efficiency gaps, as formatted cells shared by the Markdown and HTML pages.

Everything is derived from the stored files alone and sorted, so the same files give the same
tables. Runs are ranked by the task's primary metric on the test split (``final.metrics``; the
task class's ``primary_metric``, or the held-out ``loss`` when the task is not installed here).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from .efficiency import EQUIVARIANCE_THRESHOLD, Gap, best_loss, step_settled_at_or_below, paired_gaps
from .store import StoredRun

DASH = "–"


@dataclass(frozen=True)
class Column:
    title: str
    numeric: bool = False
    help: str = ""


@dataclass(frozen=True)
class Cell:
    """A table cell: ``text`` as shown, ``sort`` the value it sorts by (``None`` sorts last)."""

    text: str
    sort: float | str | None = None
    href: str | None = None
    tooltip: str | None = None


@dataclass
class Table:
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)


@dataclass
class Section:
    task: str
    version: str
    dataset: str | None
    primary_metric: str
    note: str | None
    runs: list[StoredRun]
    labels: list[str]
    gaps: list[tuple[int, int, Gap]]
    board: Table
    gap_table: Table

    @property
    def title(self) -> str:
        return f"{self.task} / {self.dataset or 'default'} (task v{self.version})"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.task}-{self.dataset or 'default'}-v{self.version}".lower()).strip("-")


# --- formatting ---------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 4) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def fmt_rate(value: float | None) -> str:
    """Samples per second or seconds: thousands separated, no exponent."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fmt_percent(value: float | None, se: float | None = None) -> str:
    if value is None:
        return DASH
    text = f"{100 * value:.3g}%"
    return text + (f" ± {100 * se:.2g}%" if se is not None else "")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


# --- building -----------------------------------------------------------------------------------
def primary_metric_of(task: str) -> tuple[str, str | None]:
    """The installed task's primary metric, or ``loss`` and a note saying why."""
    from equibench.registry import load_task_class

    try:
        return str(load_task_class(task).primary_metric), None
    except Exception as exc:  # not installed or broken: render anyway
        return "loss", (f"task {task!r} could not be loaded here ({type(exc).__name__}); runs are ranked by the "
                        "held-out loss on the test split")


def run_labels(runs: list[StoredRun]) -> list[str]:
    """Short unique names: card name, ``(no aug)`` / ``(aug)`` where unusual, seed where needed."""
    bases = []
    for run in runs:
        model = run.results["model"]
        base = run.card["name"]
        if not model["equivariant"] and not model["augmentation"]:
            base += " (no aug)"
        elif model["equivariant"] and model["augmentation"]:
            base += " (aug)"
        bases.append(base)
    counts = Counter(bases)
    labels = [f"{b} · seed {r.results['seed']}" if counts[b] > 1 else b for b, r in zip(bases, runs)]
    counts = Counter(labels)
    return [f"{label} [{r.results['model']['name']}]" if counts[label] > 1 else label
            for label, r in zip(labels, runs)]


def _primary(run: StoredRun, metric: str) -> float | None:
    value = run.results["final"]["metrics"].get(metric)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def build_sections(runs: list[StoredRun]) -> list[Section]:
    """Group runs by (task, version, dataset) and build each section's tables."""
    groups: dict[tuple, list[StoredRun]] = {}
    for run in runs:
        task = run.results["task"]
        groups.setdefault((task["name"], task["version"], task["dataset"] or ""), []).append(run)
    metrics: dict[str, tuple[str, str | None]] = {}
    sections = []
    for (task, version, dataset), group in sorted(groups.items()):
        if task not in metrics:
            metrics[task] = primary_metric_of(task)
        metric, note = metrics[task]
        sections.append(_section(task, version, dataset or None, metric, note, group))
    return sections


def _section(task: str, version: str, dataset: str | None, metric: str, note: str | None,
             group: list[StoredRun]) -> Section:
    def rank(run: StoredRun):
        value = _primary(run, metric)
        model = run.results["model"]
        return (value is None, value or 0.0, run.card["name"], model["name"], model["augmentation"],
                run.results["seed"], run.path.name)

    runs = sorted(group, key=rank)
    labels = run_labels(runs)
    gaps = paired_gaps([r.results for r in runs])
    gaps.sort(key=lambda g: (runs[g[0]].results["environment"]["device_name"], labels[g[0]], labels[g[1]]))
    best = [best_loss(r.results["curve"]) for r in runs]
    board = Table([
        Column("model", help="model name (links to its code where the card gives it)"),
        Column("equivariant", help="exactly rotation-equivariant by construction"),
        Column("augmentation", help="trained with random-rotation augmentation"),
        Column("seed", numeric=True),
        Column(f"{metric} ↓", numeric=True, help="the task's primary metric on the test split (lower is better)"),
        Column("rel. equivariance error", numeric=True,
               help="final share of the held-out loss caused by imperfect symmetry, L_equiv / L_total, ± its "
                    "standard error"),
        Column(f"step ≤ {EQUIVARIANCE_THRESHOLD:.0%}", numeric=True,
               help="first checkpoint step at which the relative equivariance error was at most 2%"),
        Column("efficiency gap", numeric=True,
               help="training time the equivariant model needs to reach the same held-out loss, divided by the "
                    "non-equivariant model's (same device), against the best-paired model"),
        Column("train samples/s", numeric=True),
        Column("inference samples/s", numeric=True),
        Column("params", numeric=True),
        Column("device"),
    ])
    for i, run in enumerate(runs):
        res, card = run.results, run.card
        model, cost = res["model"], res["cost"]
        decomposition = res["final"]["decomposition"]
        combined = decomposition["combined"] if decomposition else None
        step = step_settled_at_or_below(res["curve"])
        primary = _primary(run, metric)
        tooltip = "; ".join(x for x in (
            card.get("description"), f"by {card['authors']}" if card.get("authors") else None,
            f"paper: {card['paper']}" if card.get("paper") else None,
            f"file: {run.path.parent.parent.name}/{run.path.parent.name}/{run.path.name}") if x)
        board.rows.append([
            Cell(labels[i], labels[i], href=card.get("code"), tooltip=tooltip),
            Cell(yes_no(model["equivariant"]), yes_no(model["equivariant"])),
            Cell(yes_no(model["augmentation"]), yes_no(model["augmentation"])),
            Cell(str(res["seed"]), res["seed"]),
            Cell(fmt(primary), primary),
            Cell(fmt_percent(combined["relative"], combined["relative_se"]) if combined else DASH,
                 combined["relative"] if combined else None),
            Cell(str(step) if step is not None else "never", step),
            _best_gap_cell(i, runs, labels, gaps, best),
            Cell(fmt_rate(cost["train_samples_per_second"]), cost["train_samples_per_second"]),
            Cell(fmt_rate(cost["inference_samples_per_second"]), cost["inference_samples_per_second"]),
            Cell(f"{model['parameters']:,}", model["parameters"]),
            Cell(res["environment"]["device_name"], res["environment"]["device_name"]),
        ])
    gap_table = Table([
        Column("equivariant model"), Column("non-equivariant model"), Column("device"),
        Column("target loss", numeric=True, help="the worse of the two runs' best held-out losses"),
        Column("t equivariant (s)", numeric=True, help="training seconds to reach the target loss"),
        Column("t non-equivariant (s)", numeric=True, help="training seconds to reach the target loss"),
        Column("efficiency gap", numeric=True, help="t equivariant / t non-equivariant"),
        Column("throughput ratio", numeric=True,
               help="train samples/s of the non-equivariant model / of the equivariant model"),
        Column(f"non-eq. step ≤ {EQUIVARIANCE_THRESHOLD:.0%}", numeric=True,
               help="first checkpoint step at which the non-equivariant model's relative equivariance error "
                    "was at most 2%"),
    ])
    for i, j, gap in gaps:
        step = step_settled_at_or_below(runs[j].results["curve"])
        gap_table.rows.append([
            Cell(labels[i], labels[i]), Cell(labels[j], labels[j]),
            Cell(runs[i].results["environment"]["device_name"], runs[i].results["environment"]["device_name"]),
            Cell(fmt(gap.target_loss), gap.target_loss),
            Cell(fmt_rate(gap.t_equivariant), gap.t_equivariant),
            Cell(fmt_rate(gap.t_nonequivariant), gap.t_nonequivariant),
            Cell(f"{gap.gap:.2f}×" if gap.gap is not None else DASH, gap.gap),
            Cell(f"{gap.throughput_ratio:.2f}×" if gap.throughput_ratio is not None else DASH, gap.throughput_ratio),
            Cell(str(step) if step is not None else "never", step),
        ])
    return Section(task, version, dataset, metric, note, runs, labels, gaps, board, gap_table)


def _best_gap_cell(i: int, runs: list[StoredRun], labels: list[str], gaps: list[tuple[int, int, Gap]],
                   best: list[float | None]) -> Cell:
    """The gap of run ``i`` against its best-paired partner: the comparable run of the other kind
    (equivariant vs not, same device) with the lowest best held-out loss."""
    candidates = []
    for e, n, gap in gaps:
        if i in (e, n) and gap.gap is not None:
            partner = n if i == e else e
            candidates.append((best[partner], labels[partner], gap))
    if not candidates:
        return Cell(DASH, None)
    _, partner_label, gap = min(candidates, key=lambda c: (c[0], c[1]))
    return Cell(f"{gap.gap:.2f}× vs {partner_label}", gap.gap,
                tooltip=f"t equivariant / t non-equivariant to reach held-out loss {gap.target_loss:.4g}")
