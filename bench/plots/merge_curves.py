"""Curves of a merge sweep (paper Figs. 3 and 7): every metric against lambda, one panel per metric.

Each panel says which direction is better, and a dotted vertical line marks each sweep's best lambda by FID
(:func:`bench.sweep.best_point`). Several sweeps (``--compare``) share the axes, e.g. Fig. 7a against 7b.
matplotlib is imported here, with the Agg backend, only when a plot is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.plots import CAVEAT
from bench.sweep_record import SweepRecord


def sweep_label(record: SweepRecord) -> str:
    """A short legend label: the sweep directory's name, else ``A vs B``."""
    if record.path:
        return Path(record.path).parent.name
    return f"{record.a.get('source')} vs {record.b.get('source')}"


def plot_merge_curves(records: Sequence[SweepRecord], out_stem: str | Path, caveat: bool = False) -> dict[str, Any]:
    """Write ``<out_stem>.png`` and ``<out_stem>.pdf``; return what was plotted, read back from the figure:
    ``{"files": [...], "panels": {metric: {label: {"x": [...], "y": [...]}}}, "titles": {metric: title},
    "best": {label: lambda}}``. ``caveat``: some point's networks are not the published ones (a footnote says
    so: :data:`bench.plots.CAVEAT`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in records for p in r.points for k in p.metrics})
    labels = [sweep_label(r) for r in records]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({i + 1})" for i, label in enumerate(labels)]
    cols = min(len(keys), 3) or 1
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    curves: dict[str, dict[str, Any]] = {}
    titles: dict[str, str] = {}
    best: dict[str, float] = {}
    try:
        for i, key in enumerate(keys):
            ax = axes[i // cols][i % cols]
            direction = next((r.directions[key] for r in records if key in r.directions), None)
            arrow = {True: " (higher is better \u2191)", False: " (lower is better \u2193)"}.get(direction, "")
            ax.set_title(key + arrow, fontsize=10)
            titles[key] = ax.get_title()
            ax.set_xlabel("\u03bb (1 = A, 0 = B)")
            ax.grid(alpha=0.3)
            lines = {}
            for record, label in zip(records, labels, strict=True):
                xs, ys = record.curve(key)
                if xs:
                    (lines[label],) = ax.plot(xs, ys, marker="o", label=label)
            for record, label in zip(records, labels, strict=True):
                if record.best and label in lines:
                    ax.axvline(record.best["lambda"], color=lines[label].get_color(), linestyle=":", linewidth=1)
                    best[label] = float(record.best["lambda"])
            if len(records) > 1 and lines:
                ax.legend(fontsize=8)
            curves[key] = {label: {"x": [float(v) for v in line.get_xdata()],
                                   "y": [float(v) for v in line.get_ydata()]} for label, line in lines.items()}
        for j in range(len(keys), rows * cols):
            axes[j // cols][j % cols].set_visible(False)
        if records and records[0].best:
            fig.suptitle(f"theta = \u03bb A + (1 - \u03bb) B; best by {records[0].best['by']}: "
                         f"\u03bb = {records[0].best['lambda']:g}", fontsize=11)
        if caveat:
            fig.text(0.5, 0.005, CAVEAT, ha="center", va="bottom", fontsize=7, color="#a00000")
        fig.tight_layout(rect=(0, 0.04 if caveat else 0, 1, 1))
        stem = Path(out_stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        files = []
        for ext in ("png", "pdf"):
            target = stem.with_name(f"{stem.name}.{ext}")
            tmp = stem.with_name(f".{stem.name}.tmp.{ext}")
            fig.savefig(tmp, dpi=120)
            tmp.replace(target)
            files.append(str(target))
    finally:
        plt.close(fig)
    return {"files": files, "panels": curves, "titles": titles, "best": best}
