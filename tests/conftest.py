"""Test-wide settings: never touch the network, keep caches inside the test session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory per test session (reference features, generated reference sets)."""
    path = tmp_path_factory.mktemp("bench-cache")
    os.environ["BENCH_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _fresh_plugins():
    """Each test starts from the built-in registries, whatever the previous test registered."""
    from bench import plugins

    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's first command (tiny method, smoke suite), run once through the CLI for the session."""
    from bench.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--method", "tiny", "--suite", "smoke", "--out", str(out), "--device", "cpu"]) == 0
    run_dir = out / "smoke-tiny"
    return {"dir": run_dir, "results": json.loads((run_dir / "results.json").read_text())}
