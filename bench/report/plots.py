"""The report's figures (matplotlib, Agg backend; each written as PNG and PDF): FID against CLIP score,
precision against recall, and latency / throughput bars (Table 8). Merge curves (Figs. 3 and 7) are drawn by
:mod:`bench.plots.merge_curves`, the same figure ``sweep-merge`` writes.

A figure with any run whose weights are not ``pretrained`` (random weights, tiny models) says so in a footnote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.plots import CAVEAT
from bench.report.collect import Latency
from bench.results import Results


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_stem: Path, caveat: bool) -> list[Path]:
    if caveat:
        fig.text(0.5, 0.005, CAVEAT, ha="center", va="bottom", fontsize=7, color="#a00000")
    fig.tight_layout(rect=(0, 0.04 if caveat else 0, 1, 1))
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=110)
    _pyplot().close(fig)
    return paths


def _label(run: Results) -> str:
    return Path(run.run_dir).name or run.method


def _scatter(runs: Sequence[Results], x: str, y: str, xlabel: str, ylabel: str, title: str,
             out_stem: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    for run in runs:
        ax.scatter(run.metrics[x], run.metrics[y], marker="o" if run.comparable else "x")
        ax.annotate(_label(run), (run.metrics[x], run.metrics[y]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + " (x: not comparable)", fontsize=9)
    return _save(fig, out_stem, any(r.weights != "pretrained" for r in runs))


def plot_fid_clip(runs: Sequence[Results], out_stem: Path) -> list[Path]:
    """FID (lower is better) against CLIP score for every run that has both."""
    runs = [r for r in runs if "fid" in r.metrics and "clip_score" in r.metrics]
    return _scatter(runs, "clip_score", "fid", "CLIP score", "FID", "FID against CLIP score", out_stem)


def plot_precision_recall(runs: Sequence[Results], out_stem: Path) -> list[Path]:
    runs = [r for r in runs if "precision" in r.metrics and "recall" in r.metrics]
    return _scatter(runs, "recall", "precision", "Recall", "Precision", "Precision against recall", out_stem)


def plot_latency(records: Sequence[Latency], out_stem: Path) -> list[Path]:
    """Mean latency of one inference and throughput (images/s at the record's batch size), per record."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    names = [f"{lt.record.method}\n{lt.record.device}\n{lt.record.dtype}" for lt in records]
    ms = [lt.record.mean_ms for lt in records]
    batch = [int((lt.record.data.get("protocol") or {}).get("batch_size") or 1) for lt in records]
    a1.bar(range(len(ms)), ms, color="#4c72b0")
    a1.set_ylabel("ms per inference")
    a1.set_title("Latency (Table 8)", fontsize=9)
    a2.bar(range(len(ms)), [b * 1000.0 / m for b, m in zip(batch, ms, strict=True)], color="#55a868")
    a2.set_ylabel("images / s")
    a2.set_title("Throughput", fontsize=9)
    for ax in (a1, a2):
        ax.set_xticks(range(len(names)), names, fontsize=6)
    caveat = any(lt.record.data.get("weights") not in (None, "pretrained") for lt in records)
    return _save(fig, out_stem, caveat)
