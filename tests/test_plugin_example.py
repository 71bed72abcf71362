"""The documented third-party plug-in (docs/examples/bench-example-plugin), used as an outsider uses it: the package
is built and installed into a temporary folder, then `python -m bench` and pytest run in fresh processes.
Beside it, installed plug-ins that are broken: each breaks only its own use, with one line naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "examples" / "bench-example-plugin"


def _env(tmp_path: Path, *paths: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (*paths, REPO)),
            "BENCH_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _bench(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "bench", *args], env, cwd)


def _dist(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution as pip lays it out: modules plus a dist-info folder with its entry points."""
    for module, text in modules.items():
        (site / module).write_text(textwrap.dedent(text))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[bench]\n{entry_points}\n")


#: A plug-in whose command module raises when imported.
SHAKY = {
    "shaky_plugin.py": """
        from bench import hookimpl

        @hookimpl
        def register_commands(register):
            register("shaky", "shaky_command:ShakyCommand", description="a command that cannot load")
    """,
    "shaky_command.py": "raise RuntimeError('shaky_command is broken')\n",
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package, copied out of the repository, built and installed into a target folder."""
    root = tmp_path_factory.mktemp("example")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    done = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                 "--quiet", "--target", str(target), str(source)], dict(os.environ), root)
    assert done.returncode == 0, done.stderr
    assert (target / "bench_example").is_dir() and not (target / "bench").exists()
    return target


def test_the_example_plugin_installed_works_end_to_end(installed, tmp_path):
    shaky = tmp_path / "shaky-site"
    shaky.mkdir()
    _dist(shaky, "shaky_plugin", "shaky = shaky_plugin", SHAKY)
    env = _env(tmp_path, installed, shaky)

    listed = _bench(env, tmp_path, "list", "--json")
    assert listed.returncode == 0 and not listed.stderr, listed.stderr  # the broken command is never loaded
    data = json.loads(listed.stdout)
    rows = {kind: {r["name"]: r for r in data[kind]} for kind in ("methods", "suites", "metrics")}
    assert rows["methods"]["colour-words"]["plugin"] == "bench_example"
    assert rows["suites"]["colour-words"]["plugin"] == "bench_example"
    assert rows["metrics"]["histogram_distance"]["plugin"] == "bench_example"
    more = _bench(env, tmp_path, "list", "plugins", "--json")
    plugin = {p["name"]: p for p in json.loads(more.stdout)["plugins"]}["bench_example"]
    assert plugin["distribution"] == "bench-example-plugin 0.1.0"
    assert plugin["entry_point"] == "bench_example = bench_example"

    ran = _bench(env, tmp_path, "run", "--method", "colour-words", "--suite", "colour-words", "--out", "runs",
                 "--device", "cpu")
    assert ran.returncode == 0, ran.stderr
    assert "shaky" not in ran.stderr
    run_dir = tmp_path / "runs" / "colour-words-colour-words"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["num_samples"] == 8 and 0 < results["metrics"]["histogram_distance"] < 1
    assert results["weights"] == "none" and results["config"]["generator"]["weights"] == "none"
    assert results["not_comparable_because"] == ["suite 'colour-words' is not a published protocol"]

    command = _bench(env, tmp_path, "colours", str(run_dir))
    assert command.returncode == 0, command.stderr
    assert command.stdout.startswith(f"histogram_distance {results['metrics']['histogram_distance']:.4f} over 8")

    broken = _bench(env, tmp_path, "shaky", "--anything")
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1, broken.stderr
    assert "command 'shaky' of plug-in 'shaky' (entry point shaky = shaky_plugin)" in broken.stderr
    assert "RuntimeError: shaky_command is broken" in broken.stderr

    tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(installed.parent / "src")],
                 env, installed.parent / "src")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout


def test_an_installed_plugin_that_fails_to_import_is_one_warning_line(tmp_path):
    """A plug-in module that raises at import is left out: `bench list` and the other plug-ins keep working."""
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "broken_plugin", "broken = broken_plugin", {"broken_plugin.py": "import no_such_module_anywhere\n"})
    _dist(site, "shaky_plugin", "shaky = shaky_plugin", SHAKY)
    env = _env(tmp_path, site)
    listed = _bench(env, tmp_path, "list", "commands")
    lines = listed.stderr.strip().splitlines()
    assert listed.returncode == 0 and "shaky" in listed.stdout and "run" in listed.stdout
    assert len(lines) == 1 and lines[0].startswith("bench: warning: plug-in 'broken' (entry point broken = "
                                                   "broken_plugin) cannot be loaded (ModuleNotFoundError"), lines
    helped = _bench(env, tmp_path, "--help")
    assert helped.returncode == 0 and "a command that cannot load" in helped.stdout
    asked = _bench(env, tmp_path, "run", "--method", "tiny", "--suite", "nope")
    assert asked.returncode == 2 and "unknown suite 'nope'" in asked.stderr


def test_the_documentation_page_includes_every_file_of_the_example():
    """docs/plugin-example.md shows the tested code itself (snippet includes), every file of it, nothing else."""
    import re

    page = (REPO / "docs" / "plugin-example.md").read_text()
    included = set(re.findall(r'^--8<-- "([^"]+)"$', page, flags=re.MULTILINE))
    files = {str(p.relative_to(REPO)) for p in EXAMPLE.rglob("*") if p.is_file() and p.suffix in (".py", ".toml")
             and "__pycache__" not in p.parts}
    assert included == files
