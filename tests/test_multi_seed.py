"""``bench run --seeds``: one run directory per seed and the combined mean and spread."""

from __future__ import annotations

import json
import statistics

import pytest

from bench.errors import BenchError
from bench.multi_seed import parse_seeds


def test_parse_seeds():
    assert parse_seeds("0,1, 2") == [0, 1, 2]
    for bad, msg in (("0,x", "integers"), ("1,1", "repeats"), (",", "empty")):
        with pytest.raises(BenchError, match=msg):
            parse_seeds(bad)


def test_seeds_run_writes_one_directory_per_seed_and_the_summary(tmp_path, toy, one_thread, capsys):
    from bench.cli import main

    rc = main(["run", "--method", "tiny", "--suite", "smoke", "--limit", "3", "--metrics", "toy_fid", "--seeds",
               "0,5", "--out", str(tmp_path), "--device", "cpu", "--bootstrap", "0"])
    assert rc == 0
    per_seed = [json.loads((tmp_path / f"smoke-tiny-seed{k}" / "results.json").read_text()) for k in (0, 5)]
    assert [r["config"]["seed"] for r in per_seed] == [0, 5]
    combined = json.loads((tmp_path / "smoke-tiny-seeds" / "results_seeds.json").read_text())
    assert combined["schema"] == "sbv2-bench/seeds/v1" and combined["seeds"] == [0, 5]
    vals = [r["metrics"]["toy_mean"] for r in per_seed]
    assert vals[0] != vals[1]
    got = combined["metrics"]["toy_mean"]
    assert got["values"] == vals and got["mean"] == pytest.approx(statistics.mean(vals))
    assert got["std"] == pytest.approx(statistics.stdev(vals))
    out = capsys.readouterr().out
    assert f"{got['mean']:.4f} +- {got['std']:.4f}" in out


def test_bad_seeds_fail_before_anything_runs(tmp_path, capsys):
    from bench.cli import main

    assert main(["run", "--method", "tiny", "--suite", "smoke", "--seeds", "a", "--out", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err and not any(tmp_path.iterdir())
