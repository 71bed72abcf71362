"""The report's figures (matplotlib, Agg backend; each written as PNG and PDF): FID against CLIP score,
precision against recall, and latency / throughput bars (Table 8). Merge curves (Figs. 3 and 7) are drawn by
:mod:`bench.plots.merge_curves`, the same figure ``sweep-merge`` writes.

A figure with any run whose weights are not ``pretrained`` (random weights, tiny models) says so in a footnote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.plots import add_footnote, short
from bench.report.collect import Latency
from bench.results import Results


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_stem: Path, caveat: bool) -> list[Path]:
    bottom = add_footnote(fig) if caveat else 0.0
    fig.tight_layout(rect=(0, bottom, 1, 1))
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=110)
    _pyplot().close(fig)
    return paths


def _label(run: Results) -> str:
    return short(Path(run.run_dir).name or run.method)


def _scatter(runs: Sequence[Results], x: str, y: str, xlabel: str, ylabel: str, title: str,
             out_stem: Path) -> list[Path]:
    """One marker per run (filled: comparable; x: not), named in a legend beside the axes (labels written at
    the points would collide when runs lie close together)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, max(3.6, 1.2 + 0.22 * len(runs))))
    colors = plt.get_cmap("tab20").colors
    for i, run in enumerate(runs):
        ax.scatter(run.metrics[x], run.metrics[y], marker="o" if run.comparable else "x",
                   color=colors[i % len(colors)], label=_label(run))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.ticklabel_format(useOffset=False)
    ax.set_title(title + " (x: not comparable)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    return _save(fig, out_stem, any(r.weights != "pretrained" for r in runs))


def plot_fid_clip(runs: Sequence[Results], out_stem: Path) -> list[Path]:
    """FID (lower is better) against CLIP score for every run that has both."""
    runs = [r for r in runs if "fid" in r.metrics and "clip_score" in r.metrics]
    return _scatter(runs, "clip_score", "fid", "CLIP score", "FID", "FID against CLIP score", out_stem)


def plot_precision_recall(runs: Sequence[Results], out_stem: Path) -> list[Path]:
    runs = [r for r in runs if "precision" in r.metrics and "recall" in r.metrics]
    return _scatter(runs, "recall", "precision", "Recall", "Precision", "Precision against recall", out_stem)


def plot_latency(records: Sequence[Latency], out_stem: Path) -> list[Path]:
    """Mean latency of one inference and throughput (images/s at the record's batch size), per record: horizontal
    bars, one line of text per record (method, options, device, dtype)."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 1.4 + 0.32 * len(records)), sharey=True)
    names = [short(f"{lt.record.method} {','.join(f'{k}={v}' for k, v in lt.record.method_args.items())}".strip(), 40)
             + f" | {short(lt.record.device, 24)} | {lt.record.dtype}" for lt in records]
    ms = [lt.record.mean_ms for lt in records]
    batch = [int((lt.record.data.get("protocol") or {}).get("batch_size") or 1) for lt in records]
    rows = range(len(records))
    a1.barh(rows, ms, color="#4c72b0")
    a1.set_xlabel("ms per inference")
    a1.set_title("Latency (Table 8)", fontsize=9)
    a2.barh(rows, [b * 1000.0 / m for b, m in zip(batch, ms, strict=True)], color="#55a868")
    a2.set_xlabel("images / s")
    a2.set_title("Throughput", fontsize=9)
    a1.set_yticks(list(rows), names, fontsize=7)
    a1.invert_yaxis()
    from matplotlib.ticker import MaxNLocator

    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    caveat = any(lt.record.data.get("weights") not in (None, "pretrained") for lt in records)
    return _save(fig, out_stem, caveat)
