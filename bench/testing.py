"""A pytest plug-in for testing bench plug-ins (and the project itself).

Enable it in your ``conftest.py``::

    pytest_plugins = ["bench.testing"]

(It is deliberately not a ``pytest11`` entry point: installing sbv2-bench changes no other project's test run.)

Fixtures (none is autouse: a test asks for what it needs):

``bench_cache_dir``
    An empty cache directory for the test (``BENCH_CACHE_DIR`` points to ``tmp_path/bench-cache``): reference
    features and downloaded data of one test never leak into another, nor into your own cache.
``bench_session_cache_dir``
    One cache directory for the whole session (``BENCH_CACHE_DIR`` until the session ends): tests share what
    is expensive to compute, and still never touch your own cache.
``bench_fresh_registry``
    A fresh plug-in manager before and after the test (built-ins and installed entry points), whatever earlier
    tests registered; yields :func:`bench.plugins.current` (call it for the registries).
``bench_register``
    ``bench_register(plugin, name=None)``: register an object or module with ``@hookimpl`` functions for this
    test only (it is gone after the test); returns the registries.
``one_thread``, ``one_thread_module``
    torch on one CPU thread for a test (or a module): tiny workloads run faster and steadier on a busy machine.

And :func:`run_cli`: ``python -m bench ARGS`` in-process, giving (exit status, stdout, stderr).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from bench.cache_dir import CACHE_ENV

__all__ = ["CACHE_ENV", "registered", "run_cli", "torch_threads"]


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``python -m bench ARGS`` in-process; (exit status, stdout, stderr)."""
    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[Any]:
    """Register ``plugin`` (an object or module with ``@hookimpl`` functions) inside the ``with`` block;
    yields the registries (:class:`bench.plugins.Plugins`) with it, and rebuilds them without it after."""
    from bench import plugins

    reg = plugins.register_plugin(plugin, name=name)
    try:
        yield reg
    finally:
        plugins.reset()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` CPU threads inside the block (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def bench_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory for this test (``BENCH_CACHE_DIR``)."""
    path = tmp_path / "bench-cache"
    path.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(path))
    return path


@pytest.fixture(scope="session")
def bench_session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache directory for the session (``BENCH_CACHE_DIR``, restored when the session ends)."""
    path = tmp_path_factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(path))
        yield path


@pytest.fixture
def bench_fresh_registry() -> Iterator[Callable[[], Any]]:
    """Fresh registries for this test, and again after it; yields :func:`bench.plugins.current` (the registries
    are built on its first call, so a test that never asks pays nothing)."""
    from bench import plugins

    plugins.reset()
    yield plugins.current
    plugins.reset()


@pytest.fixture
def bench_register(bench_fresh_registry: Any) -> Callable[..., Any]:
    """``bench_register(plugin, name=None)``: register a plug-in for this test only; returns the registries."""
    from bench import plugins

    def register(plugin: object, name: str | None = None) -> Any:
        return plugins.register_plugin(plugin, name=name)

    return register


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one CPU thread for the test."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """:func:`one_thread` for a whole test module (``pytestmark = pytest.mark.usefixtures(...)``)."""
    with torch_threads(1):
        yield
