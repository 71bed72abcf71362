"""The record of a merge sweep (``<sweep>/sweep.json``, written by ``python -m bench sweep-merge``), typed.

Schema ``sbv2-bench/sweep/v1``::

    {
      "schema": "sbv2-bench/sweep/v1",
      "convention": "theta = lambda * theta_A + (1 - lambda) * theta_B (lambda = 1 is A)",
      "a": {"source": "sbv2:weights=runs/a", "method": "sbv2", "method_args": {...}, "fingerprint": "<sha256>"},
      "b": {...},
      "components": "checked equal" | "from a" | "from b" | "merged",
      "suite": "coco30k", "suite_args": {...}, "seed": 0, "limit": null,
      "points": [{"lambda": 0.0, "run_dir": "lambda-0.00", "metrics": {"fid": ...}, "comparable": false,
                  "seconds": 12.3}, ...],
      "directions": {"fid": false, "clip_score": true, ...},
      "best": {"by": "fid", "lambda": 0.5, "value": ...}
    }

``run_dir`` is relative to the sweep directory; each point is an ordinary run directory that
:func:`bench.results.load` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SWEEP_SCHEMA = "sbv2-bench/sweep/v1"
SWEEP_FILE = "sweep.json"
CONVENTION = "theta = lambda * theta_A + (1 - lambda) * theta_B (lambda = 1 is A)"


@dataclass
class SweepPoint:
    """One interpolation weight and what its run measured."""

    lam: float
    run_dir: str
    metrics: dict[str, float]
    comparable: bool = False
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"lambda": self.lam, "run_dir": self.run_dir, "metrics": self.metrics, "comparable": self.comparable,
                "seconds": self.seconds}


@dataclass
class SweepRecord:
    """A sweep's ``sweep.json``; :func:`load_sweep` reads one, :meth:`to_dict` gives the JSON object back."""

    a: dict[str, Any]
    b: dict[str, Any]
    suite: str
    points: list[SweepPoint]
    directions: dict[str, bool] = field(default_factory=dict)
    components: str = "checked equal"
    suite_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    best: dict[str, Any] | None = None
    convention: str = CONVENTION
    schema: str = SWEEP_SCHEMA
    #: Where it was read from (not written).
    path: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> SweepRecord:
        if data.get("schema") != SWEEP_SCHEMA:
            raise ValueError(f"schema is {data.get('schema')!r}, not {SWEEP_SCHEMA!r}")
        points = [SweepPoint(float(p["lambda"]), str(p["run_dir"]), _numbers(p.get("metrics") or {}),
                             bool(p.get("comparable", False)), p.get("seconds")) for p in data["points"]]
        return cls(a=dict(data["a"]), b=dict(data["b"]), suite=str(data["suite"]), points=points,
                   directions=dict(data.get("directions") or {}), components=str(data.get("components", "")),
                   suite_args=dict(data.get("suite_args") or {}), seed=int(data.get("seed", 0)),
                   limit=data.get("limit"), best=data.get("best"), convention=str(data.get("convention", CONVENTION)),
                   path=path)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "convention": self.convention, "a": self.a, "b": self.b,
                "components": self.components, "suite": self.suite, "suite_args": self.suite_args, "seed": self.seed,
                "limit": self.limit, "points": [p.to_dict() for p in self.points], "directions": self.directions,
                "best": self.best}

    def lambdas(self) -> list[float]:
        return [p.lam for p in self.points]

    def curve(self, key: str) -> tuple[list[float], list[float]]:
        """(lambdas, values) of metric ``key`` over the points that have it, in lambda order."""
        pts = sorted((p for p in self.points if key in p.metrics), key=lambda p: p.lam)
        return [p.lam for p in pts], [float(p.metrics[key]) for p in pts]

    def run_path(self, point: SweepPoint) -> Path:
        """The point's run directory (relative ``run_dir`` resolved against the sweep directory)."""
        base = Path(self.path).parent if self.path else Path(".")
        return base / point.run_dir


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A point's metrics; ValueError when one is not a number (null, text)."""
    bad = next((k for k, v in dict(metrics).items() if not isinstance(v, int | float) or isinstance(v, bool)), None)
    if bad is not None:
        raise ValueError(f"metric {bad!r} of a point is {json.dumps(metrics[bad])}, not a number")
    return dict(metrics)


def load_sweep(path: str | Path) -> SweepRecord:
    """The :class:`SweepRecord` of a sweep directory (or its ``sweep.json``); one-line error when unreadable."""
    p = Path(path)
    if p.is_dir():
        p = p / SWEEP_FILE
    if not p.is_file():
        raise BenchError(f"{p} does not exist; run `python -m bench sweep-merge` (again) to finish the sweep")
    try:
        return SweepRecord.from_dict(json.loads(p.read_text(encoding="utf-8")), path=str(p))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as exc:
        raise BenchError(f"{p} is not a readable sweep record ({exc}); re-run the sweep to rewrite it") from exc
