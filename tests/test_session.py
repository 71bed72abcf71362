"""One session, many runs: feature networks built once, reference features computed once, generator objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ToyExtractor

from bench import distributed, evaluate, load_results
from bench.errors import BenchError
from bench.run_features import FeatureStore
from bench.session import Session
from methods.tiny import TinyGenerator


def _images(run_dir):
    return {p.name: p.read_bytes() for p in sorted((run_dir / "images").glob("*.png"))}


def test_two_models_in_one_session_share_networks_and_reference_features(tmp_path, toy, one_thread, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))  # nothing cached by earlier tests
    builds, references = [], []
    real_build, real_reference = ToyExtractor.build, FeatureStore._compute_reference
    monkeypatch.setattr(ToyExtractor, "build", lambda self: builds.append(1) or real_build(self))
    monkeypatch.setattr(FeatureStore, "_compute_reference",
                        lambda self, net, refs: references.append(1) or real_reference(self, net, refs))
    monkeypatch.setattr(distributed, "init", lambda *a, **k: pytest.fail("a run must not join process groups"))
    session = Session(device="cpu")
    results = [session.evaluate(TinyGenerator(weights_seed=s), "smoke", limit=4, batch_size=2, metrics=["toy_fid"],
                                out=str(tmp_path), run_name=f"seed-{s}") for s in (0, 1)]
    assert len(builds) == 1 and len(references) == 1
    assert results[0].metrics["toy_fid"] != results[1].metrics["toy_fid"]
    # a fresh session still reads the reference features from the disk cache instead of recomputing them
    Session(device="cpu").evaluate("tiny", "smoke", limit=4, batch_size=2, metrics=["toy_fid"], out=str(tmp_path),
                                   run_name="by-name")
    assert len(references) == 1 and len(builds) == 2


def test_generator_object_equals_the_cli_run(tmp_path, toy, one_thread):
    from bench.cli import main

    assert main(["run", "--method", "tiny", "--suite", "smoke", "--limit", "3", "--batch-size", "2", "--metrics",
                 "toy_fid", "--out", str(tmp_path / "cli"), "--device", "cpu"]) == 0
    results = evaluate(TinyGenerator(), "smoke", device="cpu", limit=3, batch_size=2, metrics=["toy_fid"],
                       out=str(tmp_path / "api"))
    cli_dir = tmp_path / "cli" / "smoke-tiny"
    assert _images(cli_dir) == _images(tmp_path / "api" / "smoke-tiny")
    assert results.metrics == json.loads((cli_dir / "results.json").read_text())["metrics"]
    loaded = load_results(tmp_path / "api" / "smoke-tiny")
    assert loaded.to_dict() == results.to_dict()
    assert loaded.method == "tiny" and loaded.config["method_args"] == {"weights_seed": 0}


def test_session_loads_a_generator_once_and_caches_by_name():
    session = Session(device="cpu")
    assert session.generator("tiny", {"weights_seed": 1}) is session.generator("tiny", {"weights_seed": 1})
    assert session.generator("tiny") is not session.generator("tiny", {"weights_seed": 1})
    gen = TinyGenerator()
    calls = []
    gen.load = lambda device, dtype: calls.append((device, dtype))  # type: ignore[method-assign]
    import torch

    session.load(gen, torch.float32)
    session.load(gen, torch.float32)
    session.load(gen, torch.bfloat16)
    assert [c[1] for c in calls] == [torch.float32, torch.bfloat16]


def test_bad_arguments_are_one_line_errors():
    session = Session(device="cpu")
    with pytest.raises(BenchError, match="method_args apply to a method name"):
        session.evaluate(TinyGenerator(), "smoke", method_args={"weights_seed": 1})
    with pytest.raises(BenchError, match="must be a method name or a bench Generator"):
        session.evaluate(np.zeros(3), "smoke")  # type: ignore[arg-type]
