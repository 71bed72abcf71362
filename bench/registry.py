"""Lazy registries of methods, suites and metrics, with did-you-mean errors."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError


@dataclass
class Entry:
    """One registered thing: its name, the plug-in that gave it and how to build it."""

    name: str
    target: Any
    plugin: str
    info: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        """Import (if needed) and return the factory behind this entry."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise BenchError(
                f"plug-in {self.plugin!r} registered {self.name!r} as {self.target!r}, which cannot be imported "
                f"({exc}); reinstall the package that provides it"
            ) from exc
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj

    def build(self, **kwargs: Any) -> Any:
        """Build an instance with the given keyword arguments."""
        return self.resolve()(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        target = self.target if isinstance(self.target, str) else f"{self.target.__module__}:{self.target.__qualname__}"
        return {"name": self.name, "plugin": self.plugin, "target": target, **self.info}


class Registry:
    """Name -> :class:`Entry` for one kind of thing (``method``, ``suite`` or ``metric``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: Any, plugin: str, **info: Any) -> None:
        if not name or not isinstance(name, str):
            raise BenchError(f"plug-in {plugin!r} registered a {self.kind} without a name")
        if name in self._entries:
            other = self._entries[name].plugin
            raise BenchError(
                f"{self.kind} {name!r} is registered by both {other!r} and {plugin!r}; uninstall one of them"
            )
        self._entries[name] = Entry(name, target, plugin, dict(info))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        """Return the entry for ``name`` or raise a :class:`BenchError` naming the closest matches."""
        try:
            return self._entries[name]
        except KeyError:
            raise BenchError(unknown_name_message(self.kind, name, self.names())) from None


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One line: the unknown name, the closest known names, and where to see them all."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    if not close:
        close = [k for k in known if name.lower() in k.lower() or k.lower() in name.lower()][:3]
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known) or 'none'}"
    return f"unknown {kind} {name!r}: {hint} (see `python -m bench list {kind}s`)"
