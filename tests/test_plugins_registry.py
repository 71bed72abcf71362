"""What the registry enforces on every plug-in object: the registered name (results, describe(), option errors),
the type of what a factory builds, a generator's describe() (weights required, "none" allowed), and that the CLI
builds only the command it runs."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import hookimpl
from bench.commands.base import Command
from bench.errors import BenchError
from bench.generator import Generator
from bench.metrics.base import Metric, MetricContext, MetricResult
from bench.metrics.extractors import Extractor
from bench.options import Option
from bench.results import comparability, weights_verdict
from bench.suites.smoke import SmokeSuite
from bench.testing import run_cli

REPO = Path(__file__).resolve().parent.parent


class Flat(Generator):
    """A parameter-free generator: every image is ``level`` grey plus a tenth of its noise."""

    name = "flat"
    options = {"level": Option(0.5, float, minimum=0.0, maximum=1.0)}

    def load(self, device: Any, dtype: Any) -> None:
        self.device, self.dtype = device, dtype

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (3, 8, 8)

    @property
    def image_size(self) -> tuple[int, int]:
        return (8, 8)

    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        return None

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        return self.args["level"] + 0.1 * noise

    def decode(self, latents: Any) -> Any:
        return latents.clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": "none"}


class FlatRenamed(Flat):
    """A subclass that keeps its parent's class attribute ``name = "flat"``."""


class NoWeights(Flat):
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "method_args": self.args}


class OddWeights(Flat):
    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": "trained"}


class Histogram(Extractor):
    """No parameters: per-image mean colour."""

    def build(self) -> Any:
        return None

    def forward(self, batch: Any) -> Any:
        return batch.reshape(len(batch), -1, 3).mean(axis=1)


class ColourFD(Metric):
    """A metric class without a ``name``: its registered name must be the one errors and results use."""

    keys = ("colour_fd",)
    options = {"scale": Option(1.0, float, minimum=0.0)}

    def compute(self, ctx: MetricContext) -> MetricResult:
        return MetricResult({"colour_fd": 0.0}, {"weights": "none"})


def flat_factory(**kwargs: Any) -> Flat:
    """A factory that is no class: the registry names its object after building it."""
    return Flat(**kwargs)


class Kit:
    @hookimpl
    def register_methods(self, register):
        register("flat", Flat)
        register("flat-renamed", FlatRenamed)
        register("flat-made", flat_factory)
        register("no-weights", NoWeights)
        register("odd-weights", OddWeights)
        register("not-a-generator", dict)

    @hookimpl
    def register_metrics(self, register):
        register("colour_fd", ColourFD)

    @hookimpl
    def register_feature_extractors(self, register):
        register("histogram", Histogram)


def test_every_built_object_carries_its_registered_name(bench_register):
    reg = bench_register(Kit(), name="kit")
    gen = reg.methods.get("flat-renamed").build(level=0.25)
    assert gen.name == "flat-renamed" and gen.describe()["name"] == "flat-renamed"
    assert FlatRenamed.name == "flat" and Flat.name == "flat"  # the classes are untouched
    assert reg.methods.get("flat-made").build().describe()["name"] == "flat-made"
    assert reg.metrics.get("colour_fd").build().name == "colour_fd"
    assert reg.extractors.get("histogram").build(weights="none").kind == "histogram"
    assert reg.suites.get("smoke").build().name == "smoke"
    assert reg.commands.get("list").build().name == "list"


def test_option_errors_name_the_registered_plugin(bench_register):
    reg = bench_register(Kit(), name="kit")
    with pytest.raises(BenchError, match=r"^method 'flat-renamed' option level=2.0 must be at most 1$"):
        reg.methods.get("flat-renamed").build(level=2.0)
    with pytest.raises(BenchError, match=r"^metric 'colour_fd' has no option 'scal': did you mean scale\?$"):
        reg.metrics.get("colour_fd").build(scal=1)
    with pytest.raises(BenchError, match=r"^feature extractor 'histogram': weights must be one of pretrained, "
                                         r"random, none"):
        reg.extractors.get("histogram").build(weights="trained")
    with pytest.raises(BenchError, match="method 'not-a-generator' of plug-in 'kit' built a dict, not a bench "
                                         "Generator"):
        reg.methods.get("not-a-generator").build()


@pytest.mark.parametrize(("method", "problem"), [("no-weights", "describe() has no 'weights' key"),
                                                 ("odd-weights", "describe() says weights 'trained'")])
def test_a_description_without_known_weights_is_one_line_naming_the_plugin(method, problem, bench_register,
                                                                            bench_cache_dir, tmp_path):
    reg = bench_register(Kit(), name="kit")
    with pytest.raises(BenchError, match=re.escape(f"method {method!r} of plug-in 'kit': {problem}")):
        reg.methods.get(method).build().describe()
    rc, _, err = run_cli("run", "--method", method, "--suite", "smoke", "--limit", "2", "--metrics", "none",
                         "--out", str(tmp_path), "--device", "cpu")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and problem in err, err
    assert not (tmp_path / f"smoke-{method}" / "results.json").exists()


def test_a_subclass_under_a_new_name_records_that_name_in_its_results(bench_register, bench_cache_dir, tmp_path):
    bench_register(Kit(), name="kit")
    rc, _, err = run_cli("run", "--method", "flat-renamed", "--suite", "smoke", "--limit", "2", "--metrics", "none",
                         "--out", str(tmp_path), "--device", "cpu")
    assert rc == 0, err
    results = json.loads((tmp_path / "smoke-flat-renamed" / "results.json").read_text())
    assert results["method"] == "flat-renamed" and results["config"]["generator"]["name"] == "flat-renamed"
    assert results["weights"] == "none" and results["config"]["generator"]["weights"] == "none"
    assert not any("weights" in r for r in results["not_comparable_because"])


@pytest.mark.parametrize(("generator", "metrics", "verdict"), [
    ("pretrained", {"a": "none"}, "pretrained"),
    ("none", {"a": "pretrained", "b": "none"}, "pretrained"),
    ("none", {"a": "none"}, "none"),
    ("random", {"a": "none"}, "random"),
    ("none", {"a": "random", "b": "pretrained"}, "mixed"),
    ("external", {"a": "none"}, "none"),
])
def test_parameter_free_parts_count_for_nothing_in_the_weights_verdict(generator, metrics, verdict):
    info = {name: {"weights": w} for name, w in metrics.items()}
    assert weights_verdict(generator, info) == verdict


def test_parameter_free_networks_do_not_make_a_run_random():
    reasons = comparability("none", {"a": {"weights": "none"}}, SmokeSuite(), None, {})
    assert reasons == ["suite 'smoke' is not a published protocol"]
    reasons = comparability("random", {"a": {"weights": "none"}, "b": {"weights": "random"}}, SmokeSuite(), None, {})
    assert reasons[:2] == ["generator weights are random", "metric networks with random weights: b"]
    assert MetricResult({}, {"weights": "none"}).comparable and not MetricResult({}, {"weights": "random"}).comparable


class Counted(Command):
    """Counts how often it is built and how often its parser is."""

    help = "counted"
    built = 0
    parsers = 0

    def __init__(self) -> None:
        Counted.built += 1

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        Counted.parsers += 1
        parser.add_argument("--x", default="1")

    def run(self, args: argparse.Namespace) -> int:
        print(f"x={args.x}")
        return 0


def test_only_the_command_that_runs_is_built(bench_register):
    class Commands:
        @hookimpl
        def register_commands(self, register):
            register("counted", Counted, description="a counted command")

    bench_register(Commands(), name="counter")
    Counted.built = Counted.parsers = 0
    assert run_cli("list", "commands")[0] == 0
    with pytest.raises(SystemExit):
        run_cli("--help")
    assert (Counted.built, Counted.parsers) == (0, 0)
    assert run_cli("counted", "--x", "7")[:2] == (0, "x=7\n")
    assert (Counted.built, Counted.parsers) == (1, 1)


def test_help_and_list_import_no_other_command_module():
    code = ("import sys, io, contextlib; from bench.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): main(['list'])\n"
            "try:\n"
            "    with contextlib.redirect_stdout(out): main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('bench.commands.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.strip().splitlines()[-1] == "['bench.commands.base', 'bench.commands.list_cmd']", proc.stderr


def test_a_hook_that_raises_leaves_the_other_plugins_working(bench_fresh_registry, capsys):
    class Faulty:
        @hookimpl
        def register_methods(self, register):
            register("faulty-a", Flat)
            raise RuntimeError("oops\nsecond line")

    from bench import plugins

    reg = plugins.register_plugin(Faulty(), name="faulty")
    err = capsys.readouterr().err
    assert err == ("bench: warning: plug-in 'faulty' failed to register its methods (RuntimeError: oops); fix or "
                   "uninstall it\n")
    assert "tiny" in reg.methods and "smoke" in reg.suites
    assert run_cli("list", "methods")[0] == 0
