"""``index.html``: one self-contained page (images as data URIs, inline CSS, no script, no external reference)
with the paper tables, the other runs, the figures, the image grids, the interpolation grids and each run's
protocol, versions and hardware. Readable offline from the file system."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from bench.report.collect import Latency
from bench.report.tables import TableView, stacked
from bench.results import Results

CSS = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:75em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}th,td{border:1px solid #bbb;padding:2px 6px}
th{background:#eee}td.n{text-align:right;white-space:nowrap}td.run{font-size:.8em;max-width:22em;
overflow-wrap:anywhere}tr.measured td,tr.difference td{color:#235;background:#f4f8fc}tr.difference td{color:#555}
.notes{font-size:.8em;color:#555;overflow-wrap:anywhere}.warn{color:#a00000;overflow-wrap:anywhere}
img{max-width:100%;border:1px solid #ddd}details{margin:.3em 0}dl.kv{display:grid;grid-template-columns:
max-content 1fr;gap:0 1em;font-size:.8em;margin:.3em 0 .3em 1em}dl.kv dt{font-weight:bold}dl.kv dd{margin:0;
overflow-wrap:anywhere}h2,h3{overflow-wrap:anywhere}"""


@dataclass
class Figure:
    title: str
    path: Path | None
    text: str = ""


@dataclass
class Page:
    notice: str
    tables: list[TableView]
    own: TableView | None
    figures: list[Figure]
    grids: list[Figure]
    runs: list[Results]
    latency: list[Latency]
    warnings: list[str] = field(default_factory=list)
    interpolations: list[Figure] = field(default_factory=list)


def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(path.suffix.lower(), "image/png")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _esc(text: object) -> str:
    return html.escape(str(text))


def table_html(view: TableView) -> str:
    """The table as narrow as the paper's (:func:`bench.report.tables.stacked`): measured and difference lines
    under each paper row; long run paths wrap."""
    g = stacked(view)
    head = "".join(f"<th>{_esc(h)}</th>" for h in g.header)
    first = 2 if view.paper else 1
    body = []
    for i, row in enumerate(g.body):
        cells = []
        for j, text in enumerate(row):
            content = f"<b>{_esc(text)}</b>" if (i, j) in g.bold and text else _esc(text)
            cls = "run" if j == len(row) - 1 else ("n" if j >= first else "")
            cells.append(f'<td class="{cls}">{content}</td>' if cls else f"<td>{content}</td>")
        kind = g.kinds[i] if view.paper else "paper"
        body.append(f'<tr class="{kind}">' + "".join(cells) + "</tr>")
    notes = "".join(f"<li>{_esc(n)}</li>" for n in g.notes)
    return ((f"<p class=notes>Protocol: {_esc(view.protocol)}</p>" if view.paper else "")
            + f"<table><tr>{head}</tr>{''.join(body)}</table>"
            + (f"<ol class=notes>{notes}</ol>" if notes else ""))


def _figure(fig: Figure) -> str:
    if fig.path is None:
        return f"<h3>{_esc(fig.title)}</h3><p class=notes>{_esc(fig.text)}</p>"
    return (f"<h3>{_esc(fig.title)}</h3><p class=notes>{_esc(fig.text)}</p>"
            f'<img alt="{_esc(fig.title)}" src="{data_uri(fig.path)}">')


def _flat(value: object, prefix: str = "") -> list[tuple[str, str]]:
    """``value`` as (key, text) pairs: nested mappings become dotted keys, lists one line each."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "-")] if prefix else []
        return [kv for k, v in value.items() for kv in _flat(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            return [kv for i, v in enumerate(value) for kv in _flat(v, f"{prefix}[{i}]")]
        return [(prefix, "; ".join(str(v) for v in value) or "-")]
    return [(prefix, "-" if value is None else str(value))]


def _kv(summary: dict[str, object]) -> str:
    """A two-column list of settings (readable, wrapping) instead of raw JSON."""
    return "<dl class=kv>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in _flat(summary)) + "</dl>"


def _run_details(run: Results) -> str:
    c = run.config
    summary = {"method": run.method, "produced_by": run.produced_by, "method_args": run.method_args,
               "suite": run.suite, "samples": run.num_samples, "weights": run.weights, "comparable": run.comparable,
               "not_comparable_because": run.not_comparable_because, "seed": run.seed, "limit": run.limit,
               "dtype": c.get("dtype"), "protocol": run.protocol, "metrics": c.get("metrics"),
               "packages": c.get("packages"), "git_commit": c.get("git_commit"), "hardware": c.get("hardware"),
               "created_at": c.get("created_at")}
    made = " (images made elsewhere: external)" if run.produced_by == "external" else ""
    return (f"<details><summary>{_esc(run.run_dir)}: {_esc(run.method)}{made} on {_esc(run.suite)}"
            f"{'' if run.comparable else ' (not comparable)'}</summary>{_kv(summary)}</details>")


def _latency_details(lat: Latency) -> str:
    d = lat.record.data
    keys = ("method", "method_args", "weights", "device_name", "dtype", "protocol", "latency_ms", "peak_memory_mib",
            "torch", "diffusers", "hardware")
    return (f"<details><summary>{_esc(lat.path)}: {_esc(lat.record.method)} on {_esc(lat.record.device)}</summary>"
            f"{_kv({k: d.get(k) for k in keys})}</details>")


def render(page: Page) -> str:
    """The whole page as one string."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>sbv2-bench: the SwiftBrush v2 paper beside these measurements</title>",
             f"<style>{CSS}</style></head><body>",
             "<h1>SwiftBrush v2: the paper's tables beside these measurements</h1>",
             f"<p class=notes>{_esc(page.notice)} Measured values marked with a dagger are not comparable; the "
             "reasons are listed under each table. Bold: the best value of a column (paper values among "
             "themselves, comparable measurements among themselves).</p>"]
    if page.warnings:
        parts.append("<ul class=warn>" + "".join(f"<li>{_esc(w)}</li>" for w in page.warnings) + "</ul>")
    parts.append("<p>" + " | ".join(f'<a href="#{_esc(v.table.id)}">{_esc(v.table.id)}</a>'
                                    for v in page.tables) + "</p><h2>Paper tables</h2>")
    parts += [f'<h3 id="{_esc(v.table.id)}">{_esc(v.table.title)}</h3>' + table_html(v) for v in page.tables]
    parts.append("<h2>Runs that match no paper row</h2>")
    parts.append(table_html(page.own) if page.own is not None else "<p class=notes>None.</p>")
    parts.append("<h2>Figures</h2>")
    parts += [_figure(f) for f in page.figures]
    parts.append("<h2>Image grids</h2>")
    parts += [_figure(f) for f in page.grids]
    parts.append("<h2>Interpolations (Figs. 13 and 14)</h2>")
    parts += [_figure(f) for f in page.interpolations] or [
        "<p class=notes>No `bench interpolate` folder found (python -m bench interpolate --method ... --mode noise "
        "--prompt ... --out DIR, then give DIR to --runs).</p>"]
    parts.append("<h2>Runs: protocol, versions, hardware</h2>")
    parts += [_run_details(r) for r in page.runs] + [_latency_details(lt) for lt in page.latency]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(page: Page, out: Path) -> Path:
    path = out / "index.html"
    path.write_text(render(page), encoding="utf-8")
    return path

