"""The plug-in manager: built-in plug-ins plus those installed through the ``bench`` entry-point group."""

from __future__ import annotations

from typing import Any

import pluggy

from bench import hookspecs
from bench.errors import BenchError
from bench.registry import Contract, Registry, exception_line, plugin_label

ENTRY_POINT_GROUP = "bench"

#: Modules whose hook implementations ship with the package; they are ordinary plug-ins.
BUILTIN_PLUGINS = (
    "methods",
    "bench.suites",
    "bench.metrics",
    "bench.commands",
)

#: Registry attribute -> (hook suffix, singular noun used in messages).
KINDS = {
    "methods": ("methods", "method"),
    "suites": ("suites", "suite"),
    "metrics": ("metrics", "metric"),
    "extractors": ("feature_extractors", "extractor"),
    "commands": ("commands", "command"),
}

#: Registry attribute -> what its objects must be (:class:`bench.registry.Contract`).
CONTRACTS = {
    "methods": Contract("bench.generator:Generator", checks_description=True),
    "suites": Contract("bench.suites.base:Suite"),
    "metrics": Contract("bench.metrics.base:Metric"),
    "extractors": Contract("bench.metrics.extractors:Extractor", name_attr="kind"),
    "commands": Contract("bench.commands.base:Command"),
}


#: The project's top-level packages beside ``bench`` (the layout keeps them top-level).
SIBLING_PACKAGES = ("methods", "training")


def check_not_shadowed() -> None:
    """One line when a folder named like one of the project's top-level packages (``methods/``, ``training/``)
    in the working directory, or elsewhere early on ``sys.path``, would be imported instead of the project's."""
    import importlib.util
    from pathlib import Path

    from bench.errors import BenchError

    home = Path(__file__).resolve().parent.parent
    for name in SIBLING_PACKAGES:
        spec = importlib.util.find_spec(name)
        places = list(spec.submodule_search_locations or []) if spec is not None else []
        if spec is None or not places or Path(places[0]).resolve() != home / name:
            if places and _same_file(Path(places[0]) / "__init__.py", home / name / "__init__.py"):
                continue  # another copy of this project (a checkout beside the installed package): not foreign
            found = places[0] if places else (spec.origin if spec is not None else "nothing")
            raise BenchError(f"the package {name!r} is imported from {found}, not from sbv2-bench ({home / name}): "
                             f"a folder named {name}/ shadows it; run from another directory or rename that folder")


def _same_file(a: object, b: object) -> bool:
    from pathlib import Path

    try:
        return Path(str(a)).read_bytes() == Path(str(b)).read_bytes()
    except OSError:
        return False


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus where each third-party plug-in came from and the ones that failed to load."""

    def __init__(self) -> None:
        super().__init__("bench")
        #: plug-in name -> its entry point as installed (``name = module``) and its distribution.
        self.origins: dict[str, dict[str, str | None]] = {}
        #: One line per plug-in that could not be loaded or could not register (the others work).
        self.problems: list[str] = []


def make_plugin_manager(load_entry_points: bool = True) -> PluginManager:
    """A fresh plug-in manager with the built-ins registered (and, by default, third-party entry points)."""
    import importlib

    check_not_shadowed()
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        load_entry_points_isolated(pm)
    return pm


def load_entry_points_isolated(pm: PluginManager) -> None:
    """Register every module of the ``bench`` entry-point group; one that fails to import (or to register) is
    left out with a line in ``pm.problems`` naming the plug-in and its entry point, and the others load."""
    from importlib import metadata

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        origin = {"entry_point": f"{ep.name} = {ep.value}",
                  "distribution": f"{dist.metadata['Name']} {dist.version}" if dist is not None else None}
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a third party's failure stays with its own plug-in
            pm.problems.append(f"plug-in {plugin_label(ep.name, origin['entry_point'])} cannot be loaded "
                               f"({exception_line(exc)}); fix or uninstall it")
            continue
        pm.origins[ep.name] = origin


class Plugins:
    """Registries of methods, suites, metrics, feature extractors and commands from one plug-in manager."""

    methods: Registry
    suites: Registry
    metrics: Registry
    extractors: Registry
    commands: Registry

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        #: One line per plug-in that failed to load or to register (:func:`current` prints them once).
        self.problems: list[str] = list(pm.problems)
        for kind, (hook_name, noun) in KINDS.items():
            registry = Registry(noun, CONTRACTS[kind])
            setattr(self, kind, registry)
            hook = getattr(pm.hook, f"register_{hook_name}")
            for impl in hook.get_hookimpls():
                plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
                origin = pm.origins.get(plugin_name, {}).get("entry_point")

                def register(name: str, target: Any, _reg=registry, _plugin=plugin_name, _origin=origin,
                             **info: Any) -> None:
                    _reg.add(name, target, _plugin, _origin, **info)

                try:
                    impl.function(register=register)
                except BenchError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a third party's failure stays with its own plug-in
                    self.problems.append(f"plug-in {plugin_label(plugin_name, origin)} failed to register its {kind} "
                                         f"({exception_line(exc)}); fix or uninstall it")

    def plugin_names(self) -> list[dict[str, Any]]:
        """Every registered plug-in with the hooks it implements."""
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda p: p[0]):
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            origin = self.pm.origins.get(name, {})
            out.append(
                {
                    "name": name,
                    "hooks": hooks,
                    "builtin": name in BUILTIN_PLUGINS,
                    "distribution": origin.get("distribution"),
                    "entry_point": origin.get("entry_point"),
                }
            )
        return out


_current: Plugins | None = None


def current() -> Plugins:
    """The process-wide registries, built on first use; a plug-in that fails to load or register is a one-line
    warning on stderr (once) and is left out."""
    global _current
    if _current is None:
        _current = _reported(Plugins(make_plugin_manager()))
    return _current


#: Problems already reported on stderr (each is said once).
_said: set[str] = set()


def _reported(reg: Plugins) -> Plugins:
    import sys

    for line in reg.problems:
        if line not in _said:
            _said.add(line)
            print(f"bench: warning: {line}", file=sys.stderr)
    return reg


def register_plugin(plugin: object, name: str | None = None) -> Plugins:
    """Register an in-memory plug-in (a module or an object with hook implementations); return the registries."""
    global _current
    pm = current().pm
    pm.register(plugin, name=name)
    _current = _reported(Plugins(pm))
    return _current


def reset() -> None:
    """Forget in-memory registrations; the next :func:`current` rebuilds from built-ins and entry points."""
    global _current
    _current = None
    _said.clear()
