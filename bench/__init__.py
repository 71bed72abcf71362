"""Evaluation and benchmark suite for one-step text-to-image diffusion models.

The public Python API (imported lazily, so ``import bench`` stays cheap): :class:`Session` and
:func:`evaluate` (:mod:`bench.session`), :func:`load_results` (:func:`bench.results.load`) and
:class:`Results`.
"""

from typing import Any

from bench.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__", "Session", "evaluate", "load_results", "Results"]

_LAZY = {"Session": ("bench.session", "Session"), "evaluate": ("bench.session", "evaluate"),
         "load_results": ("bench.results", "load"), "Results": ("bench.results", "Results")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
