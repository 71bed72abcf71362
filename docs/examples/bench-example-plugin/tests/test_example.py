"""The example plug-in, tested through bench's test kit (bench.testing) as its users run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.testing import run_cli


def histograms(paths, bins=8):
    """Per-channel histograms of image files, by numpy's own histogram (independent of the extractor)."""
    rows = []
    for p in paths:
        pixels = np.asarray(Image.open(p).convert("RGB"))
        rows.append([np.histogram(pixels[..., c], bins=bins, range=(0, 256))[0] / pixels[..., c].size
                     for c in range(3)])
    return np.array(rows)


def test_everything_is_listed(bench_fresh_registry):
    rc, out, err = run_cli("list", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert "colour-words" in {m["name"] for m in data["methods"]}
    assert "colour-words" in {s["name"] for s in data["suites"]}
    assert "histogram_distance" in {m["name"] for m in data["metrics"]}
    rc, out, _ = run_cli("list", "extractors")
    assert rc == 0 and "colour_histogram" in out
    rc, out, _ = run_cli("list", "commands")
    assert rc == 0 and "colours" in out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, bench_session_cache_dir):
    """One run of the example method on the example suite, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("runs")
    rc, _, err = run_cli("run", "--method", "colour-words", "--suite", "colour-words", "--out", str(out),
                         "--device", "cpu")
    assert rc == 0, err
    return out / "colour-words-colour-words"


def test_run_end_to_end(run_dir, bench_session_cache_dir):
    results = json.loads((run_dir / "results.json").read_text())
    generated = histograms(sorted((run_dir / "images").glob("*.png"))).mean(axis=0)
    reference = histograms(sorted((bench_session_cache_dir / "bench-example").rglob("*.png"))).mean(axis=0)
    expected = 0.5 * np.abs(generated - reference).sum() / 3
    assert results["metrics"]["histogram_distance"] == pytest.approx(expected, abs=1e-12)
    assert results["num_samples"] == 8 and results["config"]["generator"]["name"] == "colour-words"
    assert results["weights"] == "none"  # nothing in this run has parameters


def test_command(run_dir, bench_fresh_registry):
    rc, out, err = run_cli("colours", str(run_dir))
    assert rc == 0, err
    assert out.startswith("histogram_distance ") and "mean colour" in out
    rc, _, err = run_cli("colours", str(run_dir.parent / "nowhere"))
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_a_subclass_registered_in_memory_records_its_own_name(bench_register):
    from bench_example.generator import ColourWordsGenerator

    from bench import hookimpl

    class Louder(ColourWordsGenerator):
        """The same generator with more of the noise by default."""

    class Extra:
        @hookimpl
        def register_methods(self, register):
            register("colour-words-loud", Louder)

    reg = bench_register(Extra(), name="extra")
    gen = reg.methods.get("colour-words-loud").build(noise_scale=0.5)
    assert gen.name == "colour-words-loud" and gen.describe()["name"] == "colour-words-loud"
    with pytest.raises(Exception, match="method 'colour-words-loud'"):
        reg.methods.get("colour-words-loud").build(noise_scale=2.0)
