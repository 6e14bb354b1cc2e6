"""The leaderboard's plots as SVG text (matplotlib, no display needed), byte-for-byte reproducible.

Per section: held-out loss against cumulative training seconds, and relative equivariance error
against training steps, both on log axes. Checkpoints at 0 s / step 0 cannot sit on a log axis
and are left out; relative errors below :data:`FLOOR` (exactly equivariant models read ~1e-15)
are drawn at the floor. Legends sit below the axes, so they never hide a line.

Reproducibility: a fixed ``svg.hashsalt`` (element ids), no ``Date`` metadata, text kept as text
(``svg.fonttype: none``), and colours assigned in table order.
"""
from __future__ import annotations

import io
import re

from .board import Section
from .efficiency import EQUIVARIANCE_THRESHOLD

FLOOR = 1e-8
_RC = {
    "svg.hashsalt": "equibench-leaderboard",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "#e3e6ea",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22"]


def _style(section: Section, i: int) -> dict:
    model = section.runs[i].results["model"]
    linestyle = "-" if model["equivariant"] else ("--" if model["augmentation"] else ":")
    return {"color": _COLORS[i % len(_COLORS)], "linestyle": linestyle, "marker": "o", "markersize": 3,
            "linewidth": 1.6}


def _label(section: Section, i: int) -> str:
    devices = {r.results["environment"]["device_name"] for r in section.runs}
    label = section.labels[i]
    return label + (f" ({section.runs[i].results['environment']['device_name']})" if len(devices) > 1 else "")


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: inlined into HTML
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF boilerplate


def loss_vs_seconds_svg(section: Section) -> str:
    """Held-out loss against cumulative training seconds (log-log), one line per run."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.6, 3.6))
        ax = fig.add_subplot()
        for i, run in enumerate(section.runs):
            points = [(p["train_seconds"], p["metrics"].get("loss")) for p in sorted(run.results["curve"],
                                                                                  key=lambda p: p["step"])]
            points = [(t, loss) for t, loss in points if t > 0 and loss is not None and loss > 0]
            if points:
                ax.plot(*zip(*points), label=_label(section, i), **_style(section, i))
        _finish(ax, "training time (s)", "held-out loss", "held-out loss vs training time")
        return _svg(fig)


def equivariance_vs_steps_svg(section: Section) -> str:
    """Relative equivariance error against training steps (log-log), one line per run, with the 2 % line."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.6, 3.6))
        ax = fig.add_subplot()
        for i, run in enumerate(section.runs):
            points = []
            for p in sorted(run.results["curve"], key=lambda p: p["step"]):
                relative = ((p.get("decomposition") or {}).get("combined") or {}).get("relative")
                if p["step"] > 0 and relative is not None:
                    points.append((p["step"], max(relative, FLOOR)))
            if points:
                ax.plot(*zip(*points), label=_label(section, i), **_style(section, i))
        ax.axhline(EQUIVARIANCE_THRESHOLD, color="#555555", linewidth=0.9, linestyle=(0, (4, 3)))
        ax.annotate(f"{EQUIVARIANCE_THRESHOLD:.0%}", (1.0, EQUIVARIANCE_THRESHOLD), xycoords=("axes fraction", "data"),
                    xytext=(2, 0), textcoords="offset points", va="center", fontsize=8, color="#555555")
        _finish(ax, "training step", "relative equivariance error", "relative equivariance error vs steps")
        return _svg(fig)


def _finish(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    if ax.get_lines() and any(not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16))
    else:
        ax.text(0.5, 0.5, "no checkpoints to plot", transform=ax.transAxes, ha="center", va="center",
                color="#777777")
