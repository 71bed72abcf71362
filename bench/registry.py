"""Lazy registries of methods, suites, metrics, feature extractors and commands, with did-you-mean errors.

Each kind of plug-in has a :class:`Contract`: the base class its objects must be, and the attribute that holds
the name it was registered under. :meth:`Entry.build` enforces it, so every object a plug-in builds carries its
registered name (option errors, ``describe()``, results and feature keys name it) and a generator's
``describe()`` is checked (:func:`check_description`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError

#: What a plug-in may say about the weights of its networks: published ones, seeded random ones, or none at all
#: (a parameter-free network or generator). Generators may also say ``"external"`` (images made elsewhere).
WEIGHTS = ("pretrained", "random", "none")
GENERATOR_WEIGHTS = (*WEIGHTS, "external")
#: Keys every generator's ``describe()`` must hold.
DESCRIPTION_KEYS = ("name", "weights")


@dataclass(frozen=True)
class Contract:
    """What the objects of one kind must be: an instance of ``base`` (``"module:Class"``, imported when first
    needed) whose attribute ``name_attr`` is set to the registered name before ``__init__`` runs."""

    base: str
    name_attr: str = "name"
    #: Whether the objects' ``describe()`` is checked by :func:`check_description` (generators).
    checks_description: bool = False

    def base_class(self) -> type:
        module_name, _, attr = self.base.partition(":")
        return getattr(importlib.import_module(module_name), attr)


@dataclass
class Entry:
    """One registered thing: its name, the plug-in that gave it and how to build it."""

    name: str
    target: Any
    plugin: str
    info: dict[str, Any] = field(default_factory=dict)
    kind: str = "plug-in"
    contract: Contract | None = None
    #: The installed plug-in's entry point (``name = module``); None for built-in and in-memory plug-ins.
    origin: str | None = None

    def label(self) -> str:
        """The plug-in, and its entry point when it was installed (:func:`plugin_label`)."""
        return plugin_label(self.plugin, self.origin)

    def resolve(self) -> Callable[..., Any]:
        """Import (if needed) and return the factory behind this entry; a module that fails to import (whatever
        it raises) or lacks the attribute is a one-line error naming the plug-in."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - a third party's failure stays with its own plug-in
            raise BenchError(
                f"{self.kind} {self.name!r} of plug-in {self.label()} cannot be loaded from {self.target!r} "
                f"({exception_line(exc)}); fix, reinstall or uninstall that plug-in"
            ) from exc
        return obj

    def build(self, **kwargs: Any) -> Any:
        """Build an instance with the given keyword arguments, under the kind's :class:`Contract`: a class is
        given its registered name before ``__init__`` runs (so its option errors name it), any other factory's
        object right after; an object of the wrong type is a one-line error naming the plug-in."""
        factory = self.resolve()
        contract = self.contract
        if contract is None:
            return factory(**kwargs)
        base = contract.base_class()
        if isinstance(factory, type) and issubclass(factory, base):
            obj = factory.__new__(factory)
            setattr(obj, contract.name_attr, self.name)
            obj.__init__(**kwargs)
        else:
            obj = factory(**kwargs)
        if not isinstance(obj, base):
            raise BenchError(f"{self.kind} {self.name!r} of plug-in {self.label()} built a {type(obj).__name__}, "
                             f"not a bench {base.__name__}; fix or uninstall that plug-in")
        setattr(obj, contract.name_attr, self.name)
        if contract.checks_description:
            obj.describe = _checked_describe(obj.describe, self)
        return obj

    def as_dict(self) -> dict[str, Any]:
        target = self.target if isinstance(self.target, str) else f"{self.target.__module__}:{self.target.__qualname__}"
        return {"name": self.name, "plugin": self.plugin, "target": target, **self.info}


def plugin_label(plugin: str, entry_point: str | None = None) -> str:
    """A plug-in for messages: ``'acme'``, or ``'acme' (entry point acme = acme.plugin)`` when it was installed."""
    return f"{plugin!r}" + (f" (entry point {entry_point})" if entry_point else "")


def exception_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it), for one-line reports."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def check_description(where: str, description: Any) -> dict[str, Any]:
    """``description`` (what a generator returned from ``describe()``) if it is a dict with every key of
    :data:`DESCRIPTION_KEYS` and a known ``weights``; else a one-line error naming ``where`` it came from (the
    plug-in for a registered generator)."""
    if not isinstance(description, dict):
        raise BenchError(f"{where}: describe() returned a {type(description).__name__}, not a dict; fix or "
                         "uninstall that plug-in")
    missing = [k for k in DESCRIPTION_KEYS if k not in description]
    if missing:
        hint = f" (weights: one of {', '.join(GENERATOR_WEIGHTS)})" if missing[0] == "weights" else ""
        raise BenchError(f"{where}: describe() has no {missing[0]!r} key{hint}; fix or uninstall that plug-in")
    if description["weights"] not in GENERATOR_WEIGHTS:
        raise BenchError(f"{where}: describe() says weights {description['weights']!r}, not one of "
                         f"{', '.join(GENERATOR_WEIGHTS)}; fix or uninstall that plug-in")
    return description


def _checked_describe(describe: Callable[[], Any], entry: Entry) -> Callable[[], dict[str, Any]]:
    def checked() -> dict[str, Any]:
        return check_description(f"{entry.kind} {entry.name!r} of plug-in {entry.label()}", describe())

    checked.__doc__ = describe.__doc__
    return checked


class Registry:
    """Name -> :class:`Entry` for one kind of thing (``method``, ``suite``, ``metric``, ...)."""

    def __init__(self, kind: str, contract: Contract | None = None) -> None:
        self.kind = kind
        self.contract = contract
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: Any, plugin: str, origin: str | None = None, /, **info: Any) -> None:
        """Register ``name`` (``origin``: the plug-in's entry point, when installed)."""
        if not name or not isinstance(name, str):
            raise BenchError(f"plug-in {plugin!r} registered a {self.kind} without a name; fix or uninstall it")
        if name in self._entries:
            other = self._entries[name].plugin
            raise BenchError(
                f"{self.kind} {name!r} is registered by both {other!r} and {plugin!r}; uninstall one of them"
            )
        self._entries[name] = Entry(name, target, plugin, dict(info), self.kind, self.contract, origin)

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
