"""The plug-in contracts: a third party's metric with its own feature network, reference-free metrics, metric
names, extractor and command registration, and errors that come before any image is generated."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import hookimpl, plugins
from bench.cli import main
from bench.commands.base import Command
from bench.metrics.base import FeatureSpec, Metric, MetricContext, MetricResult
from bench.metrics.extractors import Extractor
from bench.metrics.preprocess import Preprocess

#: The third party's own evaluation transform: 32 px, no crop (the suite's is 256 px with a centre crop).
OWN_TRANSFORM = Preprocess(size=32, center_crop=False)


class MeanColour(Extractor):
    """A third party's feature network: the mean colour of each quarter of the image (12-d)."""

    kind = "mean_colour"
    seen_sizes: list[tuple[int, int]] = []

    def build(self) -> Any:
        return "built"

    def prepare(self, image: np.ndarray) -> np.ndarray:
        MeanColour.seen_sizes.append(image.shape[:2])
        return image

    def forward(self, batch: np.ndarray) -> np.ndarray:
        b, h, w, _ = batch.shape
        quarters = batch.reshape(b, 2, h // 2, 2, w // 2, 3).mean(axis=(2, 4))
        return quarters.reshape(b, -1) / 255.0


class ColourDistance(Metric):
    """Distance between the mean features of generated and reference images."""

    name = "colour_distance"
    keys = ("colour_distance",)
    higher_is_better = {"colour_distance": False}

    def feature_specs(self) -> list[FeatureSpec]:
        return [FeatureSpec("mean_colour", {"weights": "random"}, transform=OWN_TRANSFORM)]

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.feature_specs()[0]
        gen, ref = ctx.image_features(spec, "generated"), ctx.image_features(spec, "reference")
        return MetricResult({"colour_distance": float(np.linalg.norm(gen.mean(0) - ref.mean(0)))},
                            {"weights": "random", "n_generated": len(gen), "n_reference": len(ref)})


class Brightness(Metric):
    """A reference-free metric: mean brightness of the generated images."""

    name = "brightness"
    keys = ("brightness",)
    needs_reference = False
    higher_is_better = {"brightness": True}

    def feature_specs(self) -> list[FeatureSpec]:
        return [FeatureSpec("mean_colour", {"weights": "random"}, transform=OWN_TRANSFORM)]

    def compute(self, ctx: MetricContext) -> MetricResult:
        feats = ctx.image_features(self.feature_specs()[0], "generated")
        return MetricResult({"brightness": float(feats.mean())}, {"weights": "random"})


class ThirdParty:
    @hookimpl
    def register_feature_extractors(self, register):
        register("mean_colour", MeanColour, description="mean colour of the four quarters")

    @hookimpl
    def register_metrics(self, register):
        register("colour_distance", ColourDistance)
        register("brightness", Brightness)
        register("toy_fid_again", "conftest:ToyFID")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _by_hand(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    rows = []
    for p in paths:
        img = np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.LANCZOS), dtype=np.float64)
        rows.append(img.reshape(2, 16, 2, 16, 3).mean(axis=(1, 3)).reshape(-1) / 255.0)
    return np.stack(rows)


def test_third_party_metric_with_its_own_network_and_transform_on_smoke(tmp_path, one_thread):
    plugins.register_plugin(ThirdParty(), name="third-party")
    MeanColour.seen_sizes = []
    rc, out, err = _cli("run", "--method", "tiny", "--suite", "smoke", "--limit", "4", "--batch-size", "2",
                        "--metrics", "colour_distance,brightness", "--out", str(tmp_path), "--device", "cpu")
    assert rc == 0, err
    results = json.loads((tmp_path / "smoke-tiny" / "results.json").read_text())
    assert set(MeanColour.seen_sizes) == {(32, 32)}, "the network got its own transform, not the suite's 256 px"
    images = sorted((tmp_path / "smoke-tiny" / "images").glob("*.png"))
    gen = _by_hand(images)
    assert results["metrics"]["brightness"] == pytest.approx(gen.mean(), rel=1e-9)
    from bench.suites.smoke import SmokeSuite

    ref = _by_hand(SmokeSuite().reference_images())
    expected = float(np.linalg.norm(gen.mean(0) - ref.mean(0)))
    assert results["metrics"]["colour_distance"] == pytest.approx(expected, rel=1e-9)
    assert results["metric_info"]["colour_distance"]["higher_is_better"] == {"colour_distance": False}
    assert results["metric_info"]["brightness"]["higher_is_better"] == {"brightness": True}


def test_reference_free_metric_runs_without_reference_images(tmp_path, make_coco_root, one_thread):
    """coco30k has a reference set, but a run whose metrics need none works without the val2014 images."""
    plugins.register_plugin(ThirdParty(), name="third-party")
    root = make_coco_root(tmp_path / "coco")
    for image in (root / "val2014").iterdir():
        image.unlink()
    (root / "val2014").rmdir()
    args = ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(root), "--suite-args",
            "num_prompts=4", "--batch-size", "2", "--device", "cpu", "--out", str(tmp_path / "runs")]
    rc, _, err = _cli(*args, "--metrics", "brightness")
    assert rc == 0, err
    rc, _, err = _cli(*args, "--metrics", "colour_distance", "--run-name", "with-reference")
    assert rc == 2 and "val2014" in err and len(err.strip().splitlines()) == 1


def test_unknown_feature_network_fails_before_generation(tmp_path):
    class Typo:
        @hookimpl
        def register_metrics(self, register):
            register("typo_metric", TypoMetric)

    class TypoMetric(Brightness):
        def feature_specs(self) -> list[FeatureSpec]:
            return [FeatureSpec("incepton", {})]

    plugins.register_plugin(Typo(), name="typo")
    rc, _, err = _cli("run", "--method", "tiny", "--suite", "smoke", "--limit", "2", "--metrics", "typo_metric",
                      "--out", str(tmp_path), "--device", "cpu")
    assert rc == 2
    assert "unknown extractor 'incepton': did you mean 'inception'" in err
    assert "bench list extractors" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "smoke-tiny" / "images").exists() or not any((tmp_path / "smoke-tiny" / "images").iterdir())


def test_a_metric_registered_twice_gives_two_entries(tmp_path, toy, one_thread):
    plugins.register_plugin(ThirdParty(), name="third-party")
    rc, _, err = _cli("run", "--method", "tiny", "--suite", "smoke", "--limit", "3", "--metrics",
                      "toy_fid,toy_fid_again", "--out", str(tmp_path), "--device", "cpu")
    assert rc == 0, err
    results = json.loads((tmp_path / "smoke-tiny" / "results.json").read_text())
    assert set(results["metric_info"]) == {"toy_fid", "toy_fid_again"}
    assert results["metrics"]["toy_fid_again"] == results["metrics"]["toy_fid"]
    assert results["metrics"]["toy_fid_again.toy_mean"] == results["metrics"]["toy_mean"]


def test_list_extractors_and_commands():
    plugins.register_plugin(ThirdParty(), name="third-party")
    rc, out, _ = _cli("list", "extractors", "--json")
    rows = {r["name"]: r for r in json.loads(out)["extractors"]}
    assert rc == 0 and {"inception", "vgg16", "clip", "mean_colour"} <= set(rows)
    assert rows["mean_colour"]["plugin"] == "third-party" and rows["inception"]["plugin"] == "bench.metrics"
    rc, out, _ = _cli("list", "commands", "--json")
    names = {r["name"]: r["plugin"] for r in json.loads(out)["commands"]}
    assert {"list", "run", "latency", "data"} <= set(names) and names["run"] == "bench.commands"


class Hello(Command):
    help = "say hello"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", required=True)

    def run(self, args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 0


def test_third_party_command():
    class Commands:
        @hookimpl
        def register_commands(self, register):
            register("hello", Hello)

    plugins.register_plugin(Commands(), name="greeter")
    assert _cli("hello", "--name", "world")[:2] == (0, "hello world\n")
    rc, _, err = _cli("hello")
    assert rc == 2 and "--name" in err and len(err.strip().splitlines()) == 1
    from bench.cli import build_parser

    assert "say hello" in build_parser().format_help()


@pytest.mark.parametrize("target", ["no_such_module_anywhere:Command", "bench.errors:BenchError"])
def test_broken_plugin_command_breaks_only_itself(target, capsys):
    """A command whose module raises at import (or that is no Command) leaves `bench list`, `bench --help` and
    `bench run` working (they never load it); running it, or asking for its help, is one line naming the plug-in,
    exit 2. Code that loads every command (build_parser() without argv) gets one warning line instead."""
    class Broken:
        @hookimpl
        def register_commands(self, register):
            register("broken", target, description="a command that cannot load")

    plugins.register_plugin(Broken(), name="shaky")
    rc, out, err = _cli("list", "methods")
    assert (rc, err) == (0, "") and "tiny" in out
    rc, _, err = _cli("run", "--method", "tiny", "--suite", "nope")
    assert rc == 2 and "unknown suite" in err and "broken" not in err
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr()
    assert "a command that cannot load" in help_text.out and not help_text.err
    for argv in (["broken", "--anything"], ["broken", "--help"]):
        rc, _, err = _cli(*argv)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, err
        assert lines[0].startswith("bench: error: command 'broken' of plug-in 'shaky'") and "uninstall" in err, err
    from bench.cli import build_parser

    err = io.StringIO()
    with redirect_stderr(err):
        parser = build_parser()
    assert "broken" in parser.format_help() and err.getvalue().count("\n") == 1 and "'shaky'" in err.getvalue()


@pytest.mark.parametrize("folder", ["methods", "training"])
def test_a_folder_that_shadows_a_project_package_is_one_line(folder, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import bench

    (tmp_path / folder).mkdir()
    (tmp_path / folder / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(Path(bench.__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "bench", "list", "methods"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and not done.stdout, done
    assert len(done.stderr.strip().splitlines()) == 1 and f"a folder named {folder}/ shadows it" in done.stderr
    clean = subprocess.run([sys.executable, "-m", "bench", "list", "methods"], cwd=tmp_path / folder, env=env,
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and "tiny" in clean.stdout
