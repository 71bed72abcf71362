"""Parsing and checking ``k=v,k=v`` option strings (``--method-args``) against a declared spec."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One accepted option: its default, its type (str, int, float or bool) and, optionally, its choices and
    (for numbers) the smallest and largest values it takes. Every numeric option of a built-in plug-in
    declares its ``minimum``; floats must be finite."""

    default: Any = None
    type: type = str
    choices: tuple[Any, ...] | None = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None


def parse_kv(text: str | None, what: str = "--method-args") -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}``; an empty or missing string gives ``{}``."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"{what}: {item!r} is not of the form key=value; write e.g. {what} guidance=4.5,steps=25")
        out[key.strip()] = value.strip()
    return out


def _convert(kind: str, key: str, value: Any, opt: Option) -> Any:
    if value is None:
        return None
    try:
        if opt.type is bool:
            if isinstance(value, bool):
                return value
            low = str(value).lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(value)
        converted = opt.type(value)
    except (TypeError, ValueError, OverflowError):
        raise BenchError(f"{kind} option {key}={value!r} is not a valid {opt.type.__name__}") from None
    if opt.type is float and not math.isfinite(converted):
        raise BenchError(f"{kind} option {key}={value!r} must be a finite number")
    if opt.type in (int, float):
        if opt.minimum is not None and converted < opt.minimum:
            raise BenchError(f"{kind} option {key}={value} must be {_at_least(opt.minimum)}")
        if opt.maximum is not None and converted > opt.maximum:
            raise BenchError(f"{kind} option {key}={value} must be at most {_num(opt.maximum)}")
    return converted


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _at_least(minimum: float) -> str:
    if minimum == 0:
        return "0 or positive"
    if minimum == 1:
        return "positive (at least 1)"
    return f"at least {_num(minimum)}"


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``did you mean a, b?`` naming the closest of ``known`` to ``key``, else ``accepted: ...`` (all of them)."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else f"accepted: {', '.join(sorted(known)) or 'none'}"


def resolve_options(kind: str, owner: str, spec: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against ``spec``; return every option with defaults filled in and values converted."""
    unknown = [k for k in given if k not in spec]
    if unknown:
        key = unknown[0]
        raise BenchError(f"{kind} {owner!r} has no option {key!r}: {did_you_mean(key, spec)}")
    out: dict[str, Any] = {}
    for key, opt in spec.items():
        value = _convert(f"{kind} {owner!r}" if owner else kind, key, given.get(key, opt.default), opt)
        if opt.choices is not None and value not in opt.choices:
            raise BenchError(
                f"{kind} {owner!r}: {key}={value!r} is not one of {', '.join(map(str, opt.choices))}"
            )
        out[key] = value
    return out
