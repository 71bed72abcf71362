"""Plug-in registry: built-ins, in-memory plug-ins, entry-point discovery, did-you-mean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import hookimpl, plugins
from bench.errors import BenchError
from bench.registry import Registry, unknown_name_message

REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd or REPO, timeout=120)


def test_builtins_are_listed_as_plugins():
    reg = plugins.current()
    assert "tiny" in reg.methods.names()
    assert "smoke" in reg.suites.names()
    assert {"fid", "clip_score", "precision_recall", "density_coverage", "hps", "latency"} <= set(reg.metrics.names())
    assert reg.methods.get("tiny").plugin == "methods"
    builtin = {p["name"] for p in reg.plugin_names() if p["builtin"]}
    assert builtin == set(plugins.BUILTIN_PLUGINS)


def test_in_memory_plugin_registers_all_three_kinds():
    class MyPlugin:
        @hookimpl
        def register_methods(self, register):
            register("my-gen", "methods.tiny:TinyGenerator", description="mine")

        @hookimpl
        def register_suites(self, register):
            register("my-suite", "bench.suites.smoke:SmokeSuite")

        @hookimpl
        def register_metrics(self, register):
            register("my-metric", "bench.metrics.fid:FID")

    reg = plugins.register_plugin(MyPlugin(), name="my-plugin")
    assert reg.methods.get("my-gen").plugin == "my-plugin"
    assert reg.suites.get("my-suite").plugin == "my-plugin"
    assert reg.metrics.get("my-metric").resolve().__name__ == "FID"
    plugins.reset()
    assert "my-gen" not in plugins.current().methods


def test_duplicate_names_are_rejected():
    class Clash:
        @hookimpl
        def register_methods(self, register):
            register("tiny", "methods.tiny:TinyGenerator")

    with pytest.raises(BenchError, match="registered by both"):
        plugins.register_plugin(Clash(), name="clash")


def test_unknown_name_suggests_closest():
    reg = Registry("method")
    for n in ("sd-turbo", "sd21", "sbv2", "swiftbrush"):
        reg.add(n, "x:y", "p")
    with pytest.raises(BenchError) as err:
        reg.get("sd-trubo")
    msg = str(err.value)
    assert "'sd-turbo'" in msg and "\n" not in msg
    assert "did you mean" in unknown_name_message("suite", "smok", ["smoke", "coco30k"])


def test_entry_point_plugin_is_discovered(tmp_path: Path):
    """A third-party package exposing the `bench` entry-point group shows up in `bench list --json`."""
    (tmp_path / "acme_bench.py").write_text(textwrap.dedent("""
        from bench import hookimpl

        @hookimpl
        def register_methods(register):
            register("acme-gen", "acme_bench:AcmeGenerator", description="third-party generator")
    """))
    dist = tmp_path / "acme_bench-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-bench\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[bench]\nacme = acme_bench\n")
    proc = _cli("list", "--json", env={"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    rows = {m["name"]: m for m in data["methods"]}
    assert rows["acme-gen"]["plugin"] == "acme"
    proc = _cli("list", "plugins", "--json", env={"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"})
    acme = [p for p in json.loads(proc.stdout)["plugins"] if p["name"] == "acme"]
    assert acme and acme[0]["distribution"] == "acme-bench 1.2.3" and not acme[0]["builtin"]


def test_listing_imports_no_heavy_library():
    code = ("import sys, io, contextlib; from bench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['list', '--json'])\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'numpy') if m in sys.modules]\n"
            "print(rc, heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr
