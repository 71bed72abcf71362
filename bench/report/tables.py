"""Paper tables beside the measurements: one view per table, written as Markdown, LaTeX (booktabs) and CSV.

For every measured column a table has three: the paper's value (verbatim), the measured value and the difference
(measured - paper). A measurement that cannot be compared (random weights, ``--limit``, another suite, prompt
list, HPS version or hardware) is shown with a dagger and its reasons under the table. The best value of each
column is bold (the paper's among the paper's values, the measured among comparable measurements). A paper cell
with a known erratum (``errata`` in the paper data) is never bold, and it and the difference taken from it carry
the erratum's note number. Every note (problems, the paper's inconsistencies, protocol quirks) is in every format.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.report.data import Column, Paper, Row, Table, as_number
from bench.report.match import Matches, Measurement, measure
from bench.results import Results

DAGGER = "†"


@dataclass
class RowView:
    row: Row
    measured: dict[str, Measurement]
    runs: list[str]


@dataclass
class TableView:
    table: Table
    rows: list[RowView]
    #: Footnotes: known problems and non-comparability reasons, numbered in order of appearance.
    notes: list[str] = field(default_factory=list)
    best_paper: dict[str, set[int]] = field(default_factory=dict)
    best_measured: dict[str, set[int]] = field(default_factory=dict)
    protocol: str = ""
    #: False for runs that match no paper row: no paper, source and difference columns.
    paper: bool = True
    #: The table's own notes (problems, the paper's inconsistencies, protocol quirks), not the rows'.
    table_notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> int:
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1


def decimals(texts: Sequence[str]) -> int:
    """Decimals to print a measured value of a column whose paper values are ``texts`` (one more, at least 2)."""
    places = [len(t.split(".", 1)[1]) if "." in t else 0 for t in texts if as_number(t) is not None]
    return max(places + [1]) + 1


def fmt(value: float | None, places: int) -> str:
    return "" if value is None else f"{value:.{places}f}"


def _best(values: dict[int, float], higher: bool | None) -> set[int]:
    if higher is None or not values:
        return set()
    target = max(values.values()) if higher else min(values.values())
    return {i for i, v in values.items() if v == target}


def build_view(paper: Paper, table: Table, matches: Matches) -> TableView:
    """Measure every cell of ``table`` from ``matches`` and work out the bold cells and footnotes."""
    rows = []
    for row in table.rows:
        measured = {}
        for col in table.measured_columns():
            m = measure(paper, table, col, row.model, matches)
            if m is not None:
                measured[col.key] = m
        rows.append(RowView(row, measured, sorted({m.source for m in measured.values()})))
    proto = paper.protocols.get(table.protocol, {})
    view = TableView(table, rows, protocol=f"{proto.get('metrics', table.protocol)}; prompts: "
                                           f"{proto.get('prompts', 'n/a')}")
    for col in table.columns:
        paper_vals = {i: as_number(r.row.values.get(col.key)) for i, r in enumerate(rows)
                      if col.key not in r.row.errata}
        view.best_paper[col.key] = _best({i: v for i, v in paper_vals.items() if v is not None}, col.higher)
        meas = {i: r.measured[col.key].value for i, r in enumerate(rows)
                if col.key in r.measured and r.measured[col.key].comparable and r.measured[col.key].value is not None}
        view.best_measured[col.key] = _best(meas, col.higher)  # type: ignore[arg-type]
    view.table_notes = paper.notes_of(table)
    for p in view.table_notes:
        view.note(p)
    return view


# -- a neutral grid of strings, then three renderings -------------------------------------------------------
@dataclass
class Grid:
    header: list[str]
    body: list[list[str]]
    bold: set[tuple[int, int]]
    notes: list[str]


def grid(view: TableView, dagger: str = DAGGER) -> Grid:
    """The view as strings: label, source, then per column (paper | paper, measured, difference), then runs."""
    t = view.table
    header = ["Model", "Source"]
    for col in t.columns:
        unit = f" ({col.unit})" if col.unit and f"({col.unit})" not in col.label else ""
        header += [f"{col.label}{unit} paper", f"{col.label} measured", f"{col.label} diff"] if col.measure \
            else [col.label]
    header.append("Run")
    body, bold = [], set()
    for i, rv in enumerate(view.rows):
        marks = sorted({rv.row.mark(k) for k in rv.row.values} or {rv.row.source})
        label = rv.row.label + "".join(f" [{view.note(p)}]" for p in rv.row.problems)
        line = [label, ", ".join(marks)]
        for col in t.columns:
            text = rv.row.values.get(col.key, "-")
            if rv.row.mark(col.key) != rv.row.source and col.key in rv.row.values:
                text += f" ({rv.row.mark(col.key)})"
            erratum = "".join(f" [{view.note(p)}]" for p in rv.row.problems) if col.key in rv.row.errata else ""
            text += erratum
            if i in view.best_paper.get(col.key, ()):
                bold.add((i, len(line)))
            line.append(text)
            if not col.measure:
                continue
            m = rv.measured.get(col.key)
            places = decimals(list(r.row.values.get(col.key, "") for r in view.rows))
            if m is None or m.value is None:
                line += ["", ""]
                continue
            shown = fmt(m.value, places)
            if not m.comparable:
                shown += f" {dagger}{view.note('not comparable: ' + m.source + ': ' + '; '.join(m.reasons))}"
            if i in view.best_measured.get(col.key, ()):
                bold.add((i, len(line)))
            paper_value = as_number(rv.row.values.get(col.key))
            line += [shown, "" if paper_value is None else f"{m.value - paper_value:+.{places}f}{erratum}"]
        line.append(", ".join(rv.runs))
        body.append(line)
    if view.paper:
        return Grid(header, body, bold, list(view.notes))
    keep = [j for j, h in enumerate(header) if not (h.endswith(" paper") or h.endswith(" diff") or h == "Source")]
    return Grid([header[j].removesuffix(" measured") for j in keep], [[r[j] for j in keep] for r in body],
                {(i, keep.index(j)) for i, j in bold if j in keep}, list(view.notes))


def markdown(view: TableView) -> str:
    g = grid(view)

    def cell(i: int, j: int, text: str) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if (i, j) in g.bold and text else text

    lines = [f"### {view.table.title}", "", f"Protocol: {view.protocol}", "",
             "| " + " | ".join(g.header) + " |", "|" + "---|" * len(g.header)]
    lines += ["| " + " | ".join(cell(i, j, t) for j, t in enumerate(r)) + " |" for i, r in enumerate(g.body)]
    if g.notes:
        lines.append("")
        lines += [f"[{k}] {n}" for k, n in enumerate(g.notes, 1)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", DAGGER: r"$^\dagger$",
        "‡": r"$^\ddagger$"}


def tex_escape(text: str) -> str:
    text = re.sub(DAGGER + r"(\d+)", lambda m: "\0DAG" + m.group(1) + "\0", text)
    out = "".join(_TEX.get(ch, ch) for ch in text)
    return re.sub("\0DAG(\\d+)\0", lambda m: f"$^{{\\dagger{m.group(1)}}}$", out)


def latex(view: TableView) -> str:
    g = grid(view)

    def cell(i: int, j: int, text: str) -> str:
        text = tex_escape(text)
        return f"\\textbf{{{text}}}" if (i, j) in g.bold and text else text

    header = [tex_escape(h).replace(" diff", r" $\Delta$") for h in g.header]
    lines = [f"% {view.table.title} (sbv2-bench report; requires \\usepackage{{booktabs}})",
             "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{tex_escape(view.table.title)}}}",
             "\\begin{tabular}{" + "l" * 2 + "r" * (len(g.header) - 3) + "l}", "\\toprule",
             " & ".join(header) + r" \\", "\\midrule"]
    lines += [" & ".join(cell(i, j, t) for j, t in enumerate(r)) + r" \\" for i, r in enumerate(g.body)]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if g.notes:
        lines.append("\\par\\footnotesize " + " ".join(f"[{k}] {tex_escape(n)}" for k, n in enumerate(g.notes, 1)))
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("table", "row", "model", "column", "unit", "higher_is_better", "paper", "source", "erratum",
              "measured", "difference", "comparable", "not_comparable_because", "run", "problems", "table_notes")


def csv_text(view: TableView) -> str:
    """Long format: one line per (row, column) with a paper value or a measurement; full precision. ``erratum``:
    what is wrong with this paper cell (its difference inherits it); ``table_notes``: the table's notes."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for rv in view.rows:
        for col in view.table.columns:
            paper_text = rv.row.values.get(col.key)
            m = rv.measured.get(col.key)
            if paper_text is None and m is None:
                continue
            p = as_number(paper_text)
            w.writerow({"table": view.table.id, "row": rv.row.label, "model": rv.row.model, "column": col.key,
                        "unit": col.unit, "higher_is_better": "" if col.higher is None else col.higher,
                        "paper": paper_text or "", "source": rv.row.mark(col.key) if paper_text else "",
                        "erratum": " ".join(rv.row.problems) if col.key in rv.row.errata else "",
                        "measured": "" if m is None or m.value is None else repr(m.value),
                        "difference": "" if m is None or m.value is None or p is None else repr(m.value - p),
                        "comparable": "" if m is None else m.comparable,
                        "not_comparable_because": "" if m is None else "; ".join(m.reasons),
                        "run": "" if m is None else m.source, "problems": " ".join(rv.row.problems),
                        "table_notes": " | ".join(view.table_notes)})
    return buf.getvalue()


RENDERERS: dict[str, Callable[[TableView], str]] = {"md": markdown, "tex": latex, "csv": csv_text}


def write_view(view: TableView, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext, render in RENDERERS.items():
        path = out / f"{stem}.{ext}"
        path.write_text(render(view), encoding="utf-8")
        paths.append(path)
    return paths


# -- runs that match no paper row -------------------------------------------------------------------------
def own_view(runs: Sequence[Results]) -> TableView:
    """A table of runs that match no paper row: the same columns minus "paper", one per metric found."""
    from bench.metrics.base import STANDARD_KEYS

    keys = sorted({k for r in runs for k in r.metrics})
    keys = [k for k in STANDARD_KEYS if k in keys] + [k for k in keys if k not in STANDARD_KEYS]
    columns = tuple(Column(key=k, label=k, measure=k, higher=next((h for r in runs if (h := r.higher_is_better(k))
                                                                  is not None), None)) for k in keys)
    rows = tuple(Row(label=f"{Path(r.run_dir).name} ({r.method} on {r.suite})", model=f"run:{r.run_dir}",
                     values={}, source="paper") for r in runs)
    table = Table(id="own-runs", title="Runs that match no paper row", protocol="", columns=columns, rows=rows)
    view = TableView(table, [], protocol="each run's own (see the runs section)", paper=False)
    for row, run in zip(rows, runs, strict=True):
        measured = {k: Measurement(float(run.metrics[k]), run.comparable, list(run.not_comparable_because),
                                   run.run_dir) for k in keys if k in run.metrics}
        view.rows.append(RowView(row, measured, [run.run_dir]))
    for col in columns:
        view.best_measured[col.key] = _best({i: rv.measured[col.key].value for i, rv in enumerate(view.rows)
                                             if col.key in rv.measured and rv.measured[col.key].comparable},
                                            col.higher)  # type: ignore[arg-type]
    return view
