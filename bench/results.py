"""The results of a run (``results.json``) and of ``bench latency`` (``results/perf/latency-*.json``): how they
are built, the comparability verdict, and typed loaders that every consumer (report, sweep, tests) uses.

``results.json`` keeps schema ``sbv2-bench/results/v1`` (documented in docs/results.md). Keys added since v1 was
first written are optional and additive (``metric_info.<metric>.higher_is_better``); files without them load,
with directions taken from the registered metric where it is installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.images import FLAGS

RESULTS_SCHEMA = "sbv2-bench/results/v1"
RESULTS_FILE = "results.json"
LATENCY_SCHEMA = "sbv2-bench/latency/v1"
#: Order of the first keys of ``timing_s``; the others follow sorted.
TIMING_ORDER = ("load", "generation", "generation/text_encoder", "generation/denoiser", "generation/decoder",
                "encode_save")


#: ``generator.weights`` of images made elsewhere (:mod:`bench.external`): no generator weights to judge.
EXTERNAL = "external"


#: Weights that say nothing about a run: networks (or a generator) without parameters.
NO_WEIGHTS = "none"


def weights_verdict(generator_weights: str, metric_info: Mapping[str, Mapping[str, Any]]) -> str:
    """``pretrained``, ``random`` or ``mixed`` over the generator and every metric network (the metric networks
    alone for images made elsewhere). Parameter-free parts (weights ``none``) count for nothing: the verdict is
    ``none`` only when nothing has weights."""
    kinds = {i["weights"] for i in metric_info.values() if "weights" in i}
    if generator_weights != EXTERNAL or not kinds:
        kinds.add(generator_weights)
    if len(kinds) > 1:
        kinds.discard(NO_WEIGHTS)
    return kinds.pop() if len(kinds) == 1 else "mixed"


def comparability(generator_weights: str, metric_info: Mapping[str, Mapping[str, Any]], suite: Any,
                  limit: int | None, metric_overrides: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Why a run cannot be set beside published numbers (empty: it can). ``suite`` is the run's suite."""
    reasons = []
    if generator_weights not in ("pretrained", NO_WEIGHTS, EXTERNAL):
        reasons.append(f"generator weights are {generator_weights}")
    random_metrics = [n for n, i in metric_info.items() if i.get("weights") == "random"]
    if random_metrics:
        reasons.append(f"metric networks with random weights: {', '.join(random_metrics)}")
    if not suite.comparable:
        reasons.append(f"suite {suite.name!r} is not a published protocol")
    if limit is not None:
        reasons.append(f"--limit {limit} evaluates a subset")
    if suite.comparable and limit is None:
        reasons.extend(suite.comparability_issues(metric_overrides))
    return reasons


def flag_summary(indices: Sequence[int], flags: Sequence[str | None]) -> dict[str, Any]:
    """Counts of broken images by flag, and the first 100 sample indices of each; warns on stderr."""
    counts = {k: sum(1 for f in flags if f == k) for k in FLAGS}
    first = {k: [i for i, f in zip(indices, flags, strict=True) if f == k][:100] for k in FLAGS if counts[k]}
    if sum(counts.values()):
        detail = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        print(f"bench: warning: {sum(counts.values())} broken image(s) ({detail}) are included in the scores; "
              "see images.flagged_indices in results.json", file=sys.stderr)
    return {"flagged": counts, "flagged_total": sum(counts.values()), "flagged_indices": first}


def ordered_timings(seconds: Mapping[str, float], total: float) -> dict[str, float]:
    """``timing_s``: the stages in report order, ``orchestration`` (the sum of its parts) and ``total``."""
    timing = dict(seconds)
    timing["orchestration"] = sum(v for k, v in timing.items() if k.startswith("orchestration/"))
    timing["total"] = total
    ordered = {k: timing[k] for k in TIMING_ORDER if k in timing}
    ordered.update({k: timing[k] for k in sorted(timing) if k not in ordered})
    return {k: round(v, 3) for k, v in ordered.items()}


@dataclass
class Results:
    """A run's ``results.json``, typed. :func:`load` reads one; :meth:`to_dict` gives the JSON object back."""

    run_dir: str
    method: str
    suite: str
    num_samples: int
    metrics: dict[str, float]
    metric_info: dict[str, dict[str, Any]]
    weights: str
    comparable: bool
    not_comparable_because: list[str]
    images: dict[str, Any]
    timing_s: dict[str, float]
    config: dict[str, Any]
    reference_features: dict[str, Any] | None = None
    schema: str = RESULTS_SCHEMA
    #: Keys a newer writer added that this version does not know (kept, written back unchanged).
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Results:
        """The results of a parsed ``results.json``; ValueError (naming the key) when it is not one that this
        version can read: another or a newer schema, a missing key, or a value of the wrong type."""
        if not isinstance(data, Mapping):
            raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
        known = {f.name for f in fields(cls)} - {"extra"}
        schema = data.get("schema", RESULTS_SCHEMA)
        if schema != RESULTS_SCHEMA:
            newer = isinstance(schema, str) and schema.startswith(RESULTS_SCHEMA[:-1])
            raise ValueError(f"its schema is {schema!r}, " + ("written by a newer sbv2-bench: upgrade to read it"
                                                              if newer else f"not {RESULTS_SCHEMA!r}"))
        missing = [k for k in ("method", "suite", "metrics", "config") if k not in data]
        if missing:
            raise ValueError(f"missing key {missing[0]!r}")
        _check_types(data)
        values = {k: data[k] for k in known if k in data}
        values.setdefault("run_dir", "")
        values.setdefault("num_samples", 0)
        values.setdefault("metric_info", {})
        values.setdefault("weights", "pretrained")
        values.setdefault("comparable", False)
        values.setdefault("not_comparable_because", [])
        values.setdefault("images", {})
        values.setdefault("timing_s", {})
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema, "run_dir": self.run_dir, "method": self.method,
                               "suite": self.suite, "num_samples": self.num_samples, "metrics": self.metrics,
                               "metric_info": self.metric_info, "weights": self.weights,
                               "comparable": self.comparable, "not_comparable_because": self.not_comparable_because,
                               "images": self.images, "timing_s": self.timing_s, "config": self.config}
        if self.reference_features is not None:
            out["reference_features"] = self.reference_features
        out.update(self.extra)
        return out

    # -- what consumers ask for --------------------------------------------------------------------
    @property
    def method_args(self) -> dict[str, Any]:
        return dict(self.config.get("method_args") or {})

    @property
    def suite_args(self) -> dict[str, Any]:
        return dict(self.config.get("suite_args") or {})

    @property
    def protocol(self) -> dict[str, Any]:
        return dict(self.config.get("protocol") or {})

    @property
    def produced_by(self) -> str:
        """``"external"`` for images made elsewhere and read by the run, else ``"generated"``."""
        external = (self.config.get("generator") or {}).get("weights") == EXTERNAL
        return EXTERNAL if external else "generated"

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def limit(self) -> int | None:
        return self.config.get("limit")

    def higher_is_better(self, key: str) -> bool | None:
        """Direction of result ``key`` (``hps/anime`` reads ``hps``): as recorded in ``metric_info``, else from
        the installed metric that produced it; None when neither says."""
        base = key.split("/", 1)[0]
        for info in self.metric_info.values():
            recorded = info.get("higher_is_better") or {}
            for k in (key, base):
                if k in recorded:
                    return bool(recorded[k])
        for name in self.metric_info:
            direction = _registered_direction(name, base)
            if direction is not None:
                return direction
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_types(data: Mapping[str, Any]) -> None:
    """ValueError naming the first value of a results object whose type no reader expects (a metric that is
    null or text, a table that is a list, ...)."""
    for key in ("method", "suite"):
        if not isinstance(data[key], str):
            raise ValueError(f"{key!r} is not text")
    for key in ("config", "metric_info", "images", "timing_s"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"{key!r} is not an object")
    for key in ("metrics", "timing_s"):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise ValueError(f"{key!r} is not an object")
        bad = next((k for k, v in table.items() if not _is_number(v)), None)
        if bad is not None:
            raise ValueError(f"{key}.{bad} is {json.dumps(table[bad])}, not a number")
    bad = next((k for k, v in data.get("metric_info", {}).items() if not isinstance(v, dict)), None)
    if bad is not None:
        raise ValueError(f"metric_info.{bad} is not an object")
    if not _is_number(data.get("num_samples", 0)):
        raise ValueError("'num_samples' is not a number")
    if not isinstance(data.get("not_comparable_because", []), list):
        raise ValueError("'not_comparable_because' is not a list")


def _registered_direction(metric: str, key: str) -> bool | None:
    """Direction of result ``key`` if the metric registered as ``metric`` produces it."""
    from bench import plugins
    from bench.metrics.base import result_key

    reg = plugins.current().metrics
    if metric not in reg:
        return None
    try:
        cls = reg.get(metric).resolve()
    except BenchError:
        return None
    for own in getattr(cls, "keys", ()):
        if result_key(metric, getattr(cls, "name", ""), own) == key:
            return (getattr(cls, "higher_is_better", None) or {}).get(own)
    return None


def load(run_dir: str | Path) -> Results:
    """The :class:`Results` of a run directory (or of a ``results.json`` path); one-line
    :class:`~bench.errors.BenchError` when it is missing or unreadable."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise BenchError(f"{path} does not exist; finish the run first (run the same `bench run` command again)")
    try:
        return Results.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as exc:
        raise BenchError(f"{path} is not a readable results file ({exc}); re-run the run to rewrite it") from exc


@dataclass
class LatencyRecord:
    """A ``bench latency`` record (``results/perf/latency-<method>-<device>.json``), typed."""

    method: str
    device: str
    #: Mean milliseconds of one inference (all timed inferences pooled; the paper reports this mean).
    mean_ms: float
    stages_ms: dict[str, dict[str, float]]
    peak_memory_mib: float | None
    data: dict[str, Any]

    @property
    def method_args(self) -> dict[str, Any]:
        return dict(self.data.get("method_args") or {})

    @property
    def dtype(self) -> str | None:
        return self.data.get("dtype")


def load_latency(path: str | Path) -> LatencyRecord:
    """A :class:`LatencyRecord` from a file ``bench latency`` wrote; one-line error when it is not one."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("kind") != "latency":
            raise ValueError("its 'kind' is not 'latency'")
        peak = data.get("peak_memory_mib")
        stages = data.get("stages_ms") or {}
        if peak is not None and not _is_number(peak):
            raise ValueError("'peak_memory_mib' is not a number")
        if not isinstance(stages, dict) or not all(isinstance(v, dict) and _is_number(v.get("mean"))
                                                   for v in stages.values()):
            raise ValueError("'stages_ms' is not an object of per-stage timings with a numeric mean")
        return LatencyRecord(method=str(data["method"]), device=str(data.get("device_name") or data.get("device")),
                             mean_ms=float(data["latency_ms"]), stages_ms=dict(data.get("stages_ms") or {}),
                             peak_memory_mib=data.get("peak_memory_mib"), data=data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BenchError(f"{p} is not a `bench latency` record ({exc}); write it with `python -m bench latency`") \
            from exc
