"""The CLI contract: list output, error handling (one line, exit 2), run-store schema, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from bench.metrics.base import STANDARD_KEYS


def test_list_json_shape():
    rc, out, _ = run_cli("list", "--json")
    data = json.loads(out)
    assert rc == 0 and set(data) == {"methods", "suites", "metrics"}
    for kind in data.values():
        assert kind and all({"name", "plugin"} <= set(row) for row in kind)
    rc, out, _ = run_cli("list", "suites", "--json")
    assert list(json.loads(out)) == ["suites"]
    rc, out, _ = run_cli("list")
    assert "tiny" in out and "smoke" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--method", "tinny", "--suite", "smoke"], "did you mean 'tiny'"),
        (["run", "--method", "tiny", "--suite", "smok"], "did you mean 'smoke'"),
        (["run", "--method", "tiny", "--suite", "smoke", "--metrics", "fdi"], "did you mean 'fid'"),
        (["run", "--method", "tiny", "--suite", "smoke", "--method-args", "weights_sed=3"], "weights_seed"),
        (["run", "--method", "tiny", "--suite", "smoke", "--method-args", "weights_seed=abc"], "not a valid int"),
        (["run", "--method", "tiny", "--suite", "smoke", "--method-args", "oops"], "key=value"),
        (["run", "--method", "tiny", "--suite", "smoke", "--limit", "33"], "larger than the 32 prompts"),
        (["run", "--method", "tiny", "--suite", "smoke", "--limit", "0"], "at least 1"),
        (["run", "--method", "tiny", "--suite", "smoke", "--batch-size", "0"], "at least 1"),
        (["run", "--method", "tiny", "--suite", "smoke", "--dtype", "fp8"], "invalid choice"),
        (["run", "--method", "tiny", "--suite", "smoke", "--metric-args", "fid=3"], "METRIC.OPTION"),
        (["run", "--method", "tiny", "--suite", "smoke", "--metrics", "fid", "--metric-args", "hps.version=v2.0"],
         "does not use"),
        (["run", "--method", "tiny"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, expected, tmp_path):
    rc, out, err = run_cli(*args, *(["--out", str(tmp_path)] if args[0] == "run" and len(args) > 3 else []))
    assert rc == 2
    assert expected in err
    assert err.count("\n") == 1 and err.startswith("bench: error: ")
    assert not list(tmp_path.iterdir()), "a rejected command must not write anything"


def test_smoke_run_writes_documented_run_directory(smoke_run):
    run_dir: Path = smoke_run["dir"]
    results = smoke_run["results"]
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("method", "method_args", "suite", "protocol", "seed", "packages", "git_commit", "device",
                "hardware", "generator"):
        assert key in config, key
    assert config["packages"]["torch"] and config["generator"]["weights"] == "random"
    rows = [json.loads(line) for line in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(32))
    for r in rows:
        assert {"index", "prompt", "seed", "path", "sha256"} <= set(r)
        assert (run_dir / r["path"]).is_file()
    assert len(list((run_dir / "images").iterdir())) == 32
    # every metric of the smoke suite ran, under the documented keys
    assert set(STANDARD_KEYS) <= set(results["metrics"])
    assert results["schema"] == "sbv2-bench/results/v1"
    assert results["weights"] == "random" and results["comparable"] is False
    assert all(v == v for v in results["metrics"].values()), "no NaN metric"
    assert 0.0 <= results["metrics"]["precision"] <= 1.0 and results["metrics"]["fid"] > 0


def test_smoke_table_says_not_comparable(smoke_run, capsys):
    from bench.report import results_table

    table = results_table(smoke_run["results"])
    assert "NOT comparable" in table and "random" in table
    for key in ("fid", "clip_score", "precision", "recall", "hps", "latency_ms"):
        assert key in table


def test_rerun_resumes_without_regenerating(smoke_run, tmp_path):
    """Same command again: nothing is regenerated; a deleted or corrupted image is regenerated identically."""
    import shutil

    out = tmp_path / "runs"
    shutil.copytree(smoke_run["dir"], out / "smoke-tiny")
    run_dir = out / "smoke-tiny"
    before = {p.name: p.read_bytes() for p in (run_dir / "images").iterdir()}
    (run_dir / "images" / "00003.png").unlink()
    (run_dir / "images" / "00005.png").write_bytes(b"garbage")
    args = ["run", "--method", "tiny", "--suite", "smoke", "--out", str(out), "--device", "cpu",
            "--metrics", "fid"]
    rc, _, err = run_cli(*args)
    assert rc == 0, err
    results = json.loads((run_dir / "results.json").read_text())
    assert results["images"]["generated_this_run"] == 2 and results["images"]["resumed"] is True
    after = {p.name: p.read_bytes() for p in (run_dir / "images").iterdir()}
    assert after == before
    assert results["metrics"]["fid"] == pytest.approx(smoke_run["results"]["metrics"]["fid"], rel=1e-9)


def test_rerun_with_different_config_is_refused(smoke_run, tmp_path):
    import shutil

    out = tmp_path / "runs"
    shutil.copytree(smoke_run["dir"], out / "smoke-tiny")
    before = sorted(p.name for p in (out / "smoke-tiny").rglob("*"))
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "smoke", "--out", str(out), "--seed", "1",
                         "--metrics", "none")
    assert rc == 2 and "different seed" in err and "--overwrite" in err
    assert sorted(p.name for p in (out / "smoke-tiny").rglob("*")) == before
