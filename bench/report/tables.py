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


_BREAK = "\x01"


def tex_escape(text: str, breakable: bool = False) -> str:
    """``text`` as LaTeX; ``breakable``: a line may break after ``/``, ``-`` and ``_`` and every 10 characters of
    a longer unbroken run (paths and run names in a narrow column or in notes)."""
    text = re.sub(DAGGER + r"(\d+)", lambda m: "\0DAG" + m.group(1) + "\0", text)
    if breakable:
        text = re.sub(r"[/_-]", lambda m: m.group(0) + _BREAK, text)
        text = re.sub(r"[^\s/_\x00\x01-]{13,}",
                      lambda m: _BREAK.join(m.group(0)[k:k + 10] for k in range(0, len(m.group(0)), 10)), text)
    out = "".join(_TEX.get(ch, ch) for ch in text).replace(_BREAK, "\\allowbreak{}")
    return re.sub("\0DAG(\\d+)\0", lambda m: f"$^{{\\dagger{m.group(1)}}}$", out)


@dataclass
class Stacked:
    """A table as narrow as the paper's: one column per paper column; each paper row is followed, when
    anything was measured for it, by a ``measured`` line and a ``difference`` line (``kinds`` says which)."""

    header: list[str]
    body: list[list[str]]
    kinds: list[str]
    bold: set[tuple[int, int]]
    notes: list[str]


def stacked(view: TableView) -> Stacked:
    """:func:`grid` reshaped: label, source (paper views), one cell per paper column, then the runs."""
    g = grid(view)
    first = 2 if view.paper else 1
    header = g.header[:first]
    for col in view.table.columns:
        unit = f" ({col.unit})" if col.unit and f"({col.unit})" not in col.label else ""
        header.append(col.label + unit)
    header.append("Run")
    body: list[list[str]] = []
    kinds: list[str] = []
    bold: set[tuple[int, int]] = set()
    for i, wide in enumerate(g.body):
        lines = {"paper": [], "measured": [], "difference": []}
        flags: dict[str, set[int]] = {"paper": set(), "measured": set()}
        j = first
        for col in view.table.columns:
            if not view.paper:
                parts = {"measured": j}
            elif col.measure:
                parts = {"paper": j, "measured": j + 1, "difference": j + 2}
            else:
                parts = {"paper": j}
            for kind, cells in lines.items():
                where = parts.get(kind)
                if where is not None and (i, where) in g.bold and kind in flags:
                    flags[kind].add(len(cells))
                cells.append("" if where is None else wide[where])
            j += len(parts)
        run = wide[-1]
        if view.paper:
            order = ["paper"] + (["measured", "difference"] if any(lines["measured"]) else [])
        else:
            order = ["measured"]
        for kind in order:
            if kind == "paper":
                lead = wide[:first]
            elif view.paper:
                lead = [kind, ""]
            else:
                lead = [wide[0]]
            bold |= {(len(body), first + k) for k in flags.get(kind, ())}
            body.append(lead + lines[kind] + [run if kind == "measured" else ""])
            kinds.append(kind)
    return Stacked(header, body, kinds, bold, g.notes)


#: The text width LaTeX tables are laid out for: article class, 10 pt, A4 or letter paper (345 pt).
TEXT_WIDTH_PT = 345.0
#: The label column's width (a fraction of the line width; labels wrap).
LABEL_WIDTH = 0.22


def _tex_lines(text: str, parts: list[str]) -> str:
    """A header cell on up to two lines (a nested tabular), so narrow numeric columns keep a narrow header."""
    if len(parts) < 2:
        return text
    return "\\begin{tabular}[b]{@{}c@{}}" + " \\\\ ".join(parts) + "\\end{tabular}"


def _split(text: str, at: str = " ") -> list[str]:
    """``text`` in two lines at the ``at`` nearest its middle (one line when short)."""
    if len(text) <= 9 or at not in text:
        return [text]
    cuts = [k for k in range(len(text)) if text.startswith(at, k)]
    k = min(cuts, key=lambda c: abs(c - len(text) / 2))
    return [text[:k + len(at)].strip(), text[k + len(at):].strip()]


#: At most this many value columns in one tabular; a view with more (runs with many metrics) is split.
MAX_VALUE_COLUMNS = 7


def latex(view: TableView) -> str:
    """A booktabs table as narrow as the paper's (see :func:`stacked`), in ``\\scriptsize``, whose label column
    wraps at :data:`LABEL_WIDTH` of the line; the runs are in the CSV, Markdown and HTML (paths do not fit)."""
    g = stacked(view)
    first = 2 if view.paper else 1
    values = list(range(first, len(g.header) - 1))  # without the run column
    blocks = [values[k:k + MAX_VALUE_COLUMNS] for k in range(0, len(values), MAX_VALUE_COLUMNS)] or [[]]

    def cell(i: int, j: int, text: str) -> str:
        if j == 0 and g.kinds[i] != "paper" and view.paper:
            return "\\quad " + ("$\\Delta$" if text == "difference" else tex_escape(text))
        if j == 0:
            return f"\\raggedright {tex_escape(text, breakable=True)}"
        if j == 1 and view.paper:
            return _tex_lines(text, [tex_escape(p) for p in _split(text, ", ")])
        text = tex_escape(text)
        return f"\\textbf{{{text}}}" if (i, j) in g.bold and text else text

    lines = [f"% {view.table.title} (sbv2-bench report; requires \\usepackage{{booktabs}})",
             "\\begin{table}[t]", "\\centering", "\\scriptsize", "\\setlength{\\tabcolsep}{3pt}",
             f"\\caption{{{tex_escape(view.table.title)}}}"]
    for b, block in enumerate(blocks):
        keep = list(range(first)) + block
        header = [_tex_lines(g.header[j], [tex_escape(p) for p in _split(g.header[j])]) for j in keep]
        spec = f"p{{{LABEL_WIDTH}\\linewidth}}" + ("l" if view.paper else "") + "r" * len(block)
        lines += (["\\par\\medskip"] if b else []) + ["\\begin{tabular}{" + spec + "}", "\\toprule",
                                                      " & ".join(header) + r" \\", "\\midrule"]
        for i, r in enumerate(g.body):
            if i and g.kinds[i] == "paper" and g.kinds[i - 1] != "paper":
                lines.append("\\addlinespace")
            lines.append(" & ".join(cell(i, j, r[j]) for j in keep) + r" \\")
        lines += ["\\bottomrule", "\\end{tabular}"]
    if g.notes:
        lines.append("\\par\\footnotesize " + " ".join(f"[{k}] {tex_escape(n, breakable=True)}"
                                                      for k, n in enumerate(g.notes, 1)))
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
