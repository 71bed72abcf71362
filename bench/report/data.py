"""The paper as data: the tables, cells, source marks, protocols, known problems and the experiment plan
(``bench/paper/sbv2.toml``), typed."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

PAPER_FILE = Path(__file__).resolve().parent.parent / "paper" / "sbv2.toml"
#: Source marks of a paper cell ("published": by the model's own authors, in the one-step field table).
SOURCES = ("rerun", "reported", "paper", "published")


@dataclass(frozen=True)
class Column:
    """One column of a paper table. ``measure`` names what this suite measures for it (a results.json metric
    key, ``latency_s``, ``latency_ms`` or ``peak_memory_gb``); None: a descriptive column (NFE, flags)."""

    key: str
    label: str
    measure: str | None = None
    higher: bool | None = None
    unit: str = ""
    protocol: str = ""


@dataclass(frozen=True)
class Row:
    """One row: its label, the model id it is reproduced by, the paper's values (strings as printed), each
    cell's source mark and the known problems printed beside it."""

    label: str
    model: str
    values: dict[str, str]
    source: str = "paper"
    sources: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    #: Columns whose printed value is known to be wrong or misplaced (the row's problems say why): never bold,
    #: and a difference taken from one carries the erratum's mark.
    errata: tuple[str, ...] = ()

    def mark(self, key: str) -> str:
        """Source mark of cell ``key``."""
        return self.sources.get(key, self.source)


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    protocol: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    problems: tuple[str, ...] = ()
    #: Notes printed with the table that are not problems (e.g. which cells the authors re-timed).
    notes: tuple[str, ...] = ()
    #: What ``bench reproduce`` runs for it: suite names and/or ``latency`` (default: what its columns need).
    reproduce: tuple[str, ...] = ()

    def measured_columns(self) -> list[Column]:
        return [c for c in self.columns if c.measure]


@dataclass(frozen=True)
class Model:
    """How a model id is reproduced: a method and options (public), or training commands (``train``: the
    arguments of ``python -m training``, with ``{models}``, ``{jdb}``, ``{laion}``, ``{pairs}`` placeholders)."""

    id: str
    method: str | None = None
    method_args: dict[str, Any] = field(default_factory=dict)
    train: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    differs: str = ""
    #: The model whose timing stands for this one (same architecture; timing does not depend on the weights).
    timing: str | None = None
    #: A stand-in for an architecture, timed with random weights (``sbv2-arch``): random weights are the plan.
    architecture: bool = False

    @property
    def trained(self) -> bool:
        return bool(self.train)


@dataclass(frozen=True)
class Inconsistency:
    """A place where the paper contradicts itself, listed with every table in ``tables``."""

    tables: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Paper:
    notice: str
    sources: dict[str, str]
    protocols: dict[str, dict[str, Any]]
    models: dict[str, Model]
    tables: tuple[Table, ...]
    inconsistencies: tuple[Inconsistency, ...] = ()

    def table(self, table_id: str) -> Table:
        for t in self.tables:
            if t.id == table_id:
                return t
        raise BenchError(f"unknown table {table_id!r}: known {', '.join(t.id for t in self.tables)}")

    def protocol_of(self, table: Table, column: Column | None = None) -> dict[str, Any]:
        name = (column.protocol if column is not None and column.protocol else "") or table.protocol
        return {"name": name, **self.protocols.get(name, {})}

    def notes_of(self, table: Table) -> list[str]:
        """Every note printed with ``table``, in order: its problems, the paper's inconsistencies that concern it,
        its notes, then the notes of its protocols that apply to its measured columns."""
        out = list(table.problems)
        out += [f"Paper inconsistency: {i.text}" for i in self.inconsistencies if table.id in i.tables]
        out += list(table.notes)
        measures = {c.measure for c in table.measured_columns()}
        names = dict.fromkeys([table.protocol] + [c.protocol for c in table.columns if c.protocol])
        for name in names:
            for note in self.protocols.get(name, {}).get("notes", ()):
                if not note.get("measures") or measures & set(note["measures"]):
                    out.append(note["text"])
        return list(dict.fromkeys(out))

    def model_ids(self) -> list[str]:
        """Every model id a row names (with or without a plan), in table order, then the models that time them."""
        rows = [r.model for t in self.tables for r in t.rows]
        timing = [m.timing for m in (self.models.get(r) for r in rows) if m is not None and m.timing]
        return list(dict.fromkeys(rows + timing))


def _row(raw: dict[str, Any], where: str) -> Row:
    source = raw.get("source", "paper")
    sources = dict(raw.get("sources") or {})
    for mark in (source, *sources.values()):
        if mark not in SOURCES:
            raise ValueError(f"{where}: source mark {mark!r} is not one of {SOURCES}")
    errata = tuple(raw.get("errata") or ())
    if set(errata) - set(raw["values"]):
        raise ValueError(f"{where}: errata name cells without a value: {sorted(set(errata) - set(raw['values']))}")
    if errata and not raw.get("problems"):
        raise ValueError(f"{where}: errata need the row's problems to say what is wrong")
    return Row(label=raw["label"], model=raw["model"], values={k: str(v) for k, v in raw["values"].items()},
               source=source, sources=sources, problems=tuple(raw.get("problems") or ()), errata=errata)


def parse_paper(data: dict[str, Any]) -> Paper:
    """A :class:`Paper` from the TOML object; ValueError/KeyError on a malformed file."""
    models = {k: Model(id=k, method=v.get("method"), method_args=dict(v.get("method_args") or {}),
                       train=tuple(v.get("train") or ()), needs=tuple(v.get("needs") or ()),
                       differs=str(v.get("differs", "")), timing=v.get("timing"),
                       architecture=bool(v.get("architecture", False))) for k, v in data["models"].items()}
    for m in models.values():
        for dep in (*m.needs, *([m.timing] if m.timing else [])):
            if dep not in models:
                raise ValueError(f"model {m.id} names unknown model {dep!r}")
    tables = []
    for t in data["tables"]:
        columns = tuple(Column(key=c["key"], label=c["label"], measure=c.get("measure"), higher=c.get("higher"),
                               unit=c.get("unit", ""), protocol=c.get("protocol", "")) for c in t["columns"])
        keys = {c.key for c in columns}
        rows = tuple(_row(r, f"{t['id']}/{r.get('label')}") for r in t["rows"])
        for r in rows:
            unknown = set(r.values) - keys
            if unknown:
                raise ValueError(f"{t['id']}/{r.label}: values for unknown columns {sorted(unknown)}")
        tables.append(Table(id=t["id"], title=t["title"], protocol=t["protocol"], columns=columns, rows=rows,
                            problems=tuple(t.get("problems") or ()), notes=tuple(t.get("notes") or ()),
                            reproduce=tuple(t.get("reproduce") or ())))
    ids = {t.id for t in tables}
    inconsistencies = tuple(Inconsistency(tuple(i["tables"]), i["text"]) for i in data.get("inconsistencies") or ())
    for inc in inconsistencies:
        if set(inc.tables) - ids:
            raise ValueError(f"inconsistency {inc.text[:40]!r}... names unknown tables {sorted(set(inc.tables) - ids)}")
    return Paper(notice=data["notice"], sources=dict(data["sources"]), protocols=dict(data["protocols"]),
                 models=models, tables=tuple(tables), inconsistencies=inconsistencies)


@functools.lru_cache(maxsize=1)
def paper() -> Paper:
    """The SBv2 paper's tables (package data)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 needs the tomli backport
        import tomli as tomllib

    try:
        return parse_paper(tomllib.loads(PAPER_FILE.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise BenchError(f"{PAPER_FILE} is not a readable paper file ({exc}); reinstall sbv2-bench") from exc


def as_number(text: str | None) -> float | None:
    """A paper cell as a float (None for a flag such as ``yes`` or ``1.3M``)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None
