"""The plug-in manager: built-in plug-ins plus those installed through the ``bench`` entry-point group."""

from __future__ import annotations

from typing import Any

import pluggy

from bench import hookspecs
from bench.registry import Registry

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


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh plug-in manager with the built-ins registered (and, by default, third-party entry points)."""
    import importlib

    check_not_shadowed()
    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


class Plugins:
    """Registries of methods, suites, metrics, feature extractors and commands from one plug-in manager."""

    methods: Registry
    suites: Registry
    metrics: Registry
    extractors: Registry
    commands: Registry

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        for kind, (hook_name, noun) in KINDS.items():
            registry = Registry(noun)
            setattr(self, kind, registry)
            hook = getattr(pm.hook, f"register_{hook_name}")
            for impl in hook.get_hookimpls():
                plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

                def register(name: str, target: Any, _reg=registry, _plugin=plugin_name, **info: Any) -> None:
                    _reg.add(name, target, _plugin, **info)

                impl.function(register=register)

    def plugin_names(self) -> list[dict[str, Any]]:
        """Every registered plug-in with the hooks it implements."""
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda p: p[0]):
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            dist = dict(self.pm.list_plugin_distinfo()).get(plugin)
            out.append(
                {
                    "name": name,
                    "hooks": hooks,
                    "builtin": name in BUILTIN_PLUGINS,
                    "distribution": f"{dist.project_name} {dist.version}" if dist else None,
                }
            )
        return out


_current: Plugins | None = None


def current() -> Plugins:
    """The process-wide registries, built on first use."""
    global _current
    if _current is None:
        _current = Plugins(make_plugin_manager())
    return _current


def register_plugin(plugin: object, name: str | None = None) -> Plugins:
    """Register an in-memory plug-in (a module or an object with hook implementations); return the registries."""
    global _current
    pm = current().pm
    pm.register(plugin, name=name)
    _current = Plugins(pm)
    return _current


def reset() -> None:
    """Forget in-memory registrations; the next :func:`current` rebuilds from built-ins and entry points."""
    global _current
    _current = None
