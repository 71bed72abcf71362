"""The typed results loader: results.json of runs (old and new) and `bench latency` records."""

from __future__ import annotations

import json

import pytest

from bench.errors import BenchError
from bench.results import Results, load, load_latency

#: A results.json as the first v1 writer produced it (no higher_is_better in metric_info).
OLD_V1 = {
    "schema": "sbv2-bench/results/v1", "run_dir": "runs/coco30k-sd-turbo", "method": "sd-turbo", "suite": "coco30k",
    "num_samples": 30000, "metrics": {"fid": 16.1, "clip_score": 0.33, "precision": 0.65, "recall": 0.35,
                                      "hps/anime": 27.9},
    "metric_info": {"fid": {"weights": "pretrained", "comparable": True, "seconds": 1.0},
                    "precision_recall": {"weights": "pretrained", "comparable": True},
                    "hps": {"weights": "pretrained", "comparable": True}},
    "weights": "pretrained", "comparable": True, "not_comparable_because": [],
    "images": {"total": 30000, "flagged_total": 0}, "timing_s": {"total": 400.0},
    "config": {"method": "sd-turbo", "method_args": {"weights": "stabilityai/sd-turbo"}, "seed": 0, "limit": None,
               "protocol": {"suite": "coco30k"}},
    "reference_features": {"inception-1": {"count": 40504}},
    "future_key": {"kept": True},
}


def test_old_v1_results_load_with_directions_from_the_registry(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(OLD_V1))
    r = load(tmp_path)
    assert isinstance(r, Results) and r.method == "sd-turbo" and r.metrics["fid"] == 16.1
    assert r.method_args == {"weights": "stabilityai/sd-turbo"} and r.seed == 0 and r.limit is None
    assert r.protocol == {"suite": "coco30k"}
    assert r.higher_is_better("fid") is False and r.higher_is_better("recall") is True
    assert r.higher_is_better("hps/anime") is True and r.higher_is_better("made_up") is None
    assert r.to_dict() == OLD_V1, "loading and writing back loses and changes nothing"
    assert load(tmp_path / "results.json").to_dict() == OLD_V1


def test_recorded_directions_win(tmp_path):
    data = json.loads(json.dumps(OLD_V1))
    data["metric_info"]["fid"]["higher_is_better"] = {"fid": True}  # what the writer recorded is what counts
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert load(tmp_path).higher_is_better("fid") is True


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"method": "x"}', "\udcff"])
def test_broken_results_are_one_line_errors(tmp_path, text):
    (tmp_path / "results.json").write_text(text, errors="surrogateescape")
    with pytest.raises(BenchError) as err:
        load(tmp_path)
    assert "results.json" in str(err.value) and "\n" not in str(err.value)


def test_missing_results_say_what_to_do(tmp_path):
    with pytest.raises(BenchError, match="finish the run first"):
        load(tmp_path / "nothing-here")


def test_latency_record(tmp_path):
    record = {"schema": "sbv2-bench/latency/v1", "kind": "latency", "method": "sd-turbo", "device_name": "NVIDIA H100",
              "dtype": "fp16", "method_args": {"weights": "random"}, "latency_ms": 14.6,
              "stages_ms": {"denoiser": {"mean": 5.0}}, "peak_memory_mib": 3000.0, "repeats_ms": {"mean": 14.5}}
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(record))
    lat = load_latency(path)
    assert (lat.method, lat.device, lat.mean_ms, lat.dtype) == ("sd-turbo", "NVIDIA H100", 14.6, "fp16")
    assert lat.method_args == {"weights": "random"} and lat.stages_ms["denoiser"]["mean"] == 5.0
    path.write_text(json.dumps(OLD_V1))
    with pytest.raises(BenchError, match="not a `bench latency` record"):
        load_latency(path)
