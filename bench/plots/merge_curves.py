"""Curves of a merge sweep (paper Figs. 3 and 7): every quality metric against lambda, one panel per metric.

Each panel says which direction is better, and a dotted vertical line marks each sweep's best lambda by FID
(:func:`bench.merge_sweep.best_point`). The title names A and B of every sweep. Timing metrics (:data:`NOT_PLOTTED`)
are left out: every point of a merge has the same architecture, so its latency does not depend on lambda.
Several sweeps (``--compare``) share the axes, e.g. Fig. 7a against 7b. matplotlib is imported here, with the
Agg backend, only when a plot is made.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.merge_sweep_record import SweepRecord
from bench.plots import add_footnote, short

#: Metrics that do not depend on the merged weights (one architecture at every lambda): not plotted.
NOT_PLOTTED = frozenset({"latency_ms"})


def ends(record: SweepRecord) -> str:
    """``A = <source>, B = <source>`` of a sweep (what lambda = 1 and lambda = 0 are)."""
    return f"A = {record.a.get('source')}, B = {record.b.get('source')}"


def sweep_label(record: SweepRecord) -> str:
    """A short legend label: the sweep directory's name, else ``A vs B``."""
    if record.path:
        return Path(record.path).parent.name
    return f"{record.a.get('source')} vs {record.b.get('source')}"


def plot_merge_curves(records: Sequence[SweepRecord], out_stem: str | Path, caveat: bool = False) -> dict[str, Any]:
    """Write ``<out_stem>.png`` and ``<out_stem>.pdf``; return what was plotted, read back from the figure:
    ``{"files": [...], "panels": {metric: {label: {"x": [...], "y": [...]}}}, "titles": {metric: title},
    "best": {label: lambda}, "ends": {label: "A = ..., B = ..."}}``. ``caveat``: some point's networks are not the published ones (a footnote says
    so: :data:`bench.plots.CAVEAT`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in records for p in r.points for k in p.metrics} - NOT_PLOTTED)
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
        title = "theta = \u03bb A + (1 - \u03bb) B"
        if records and records[0].best:
            title += f"; best by {records[0].best['by']}: \u03bb = {records[0].best['lambda']:g}"
        named = [ends(r) if len(records) == 1 else f"{short(label, 30)}: {ends(r)}"
                 for r, label in zip(records, labels, strict=True)]
        width = max(40, int(fig.bbox.width / (7.0 * fig.dpi / 72)))
        fig.suptitle(title + "\n" + "\n".join(textwrap.fill(n, width) for n in named), fontsize=10)
        bottom = add_footnote(fig) if caveat else 0.0
        fig.tight_layout(rect=(0, bottom, 1, 1))
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
    return {"files": files, "panels": curves, "titles": titles, "best": best,
            "ends": {label: ends(r) for r, label in zip(records, labels, strict=True)}}
