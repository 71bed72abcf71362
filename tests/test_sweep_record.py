"""The sweep record loader."""

from __future__ import annotations

import json

import pytest

from bench.errors import BenchError
from bench.merge_sweep_record import SWEEP_SCHEMA, load_sweep

RECORD = {
    "schema": SWEEP_SCHEMA, "convention": "theta = lambda * theta_A + (1 - lambda) * theta_B (lambda = 1 is A)",
    "a": {"source": "swiftbrush", "method": "swiftbrush", "method_args": {}, "fingerprint": "aa"},
    "b": {"source": "sd-turbo", "method": "sd-turbo", "method_args": {}, "fingerprint": "bb"},
    "components": "from b", "suite": "coco30k", "suite_args": {}, "seed": 0, "limit": None,
    "points": [{"lambda": 1.0, "run_dir": "lambda-1.00", "metrics": {"fid": 15.5}, "comparable": True, "seconds": 3.0},
               {"lambda": 0.0, "run_dir": "lambda-0.00", "metrics": {"fid": 16.1, "recall": 0.35},
                "comparable": True, "seconds": 2.0}],
    "directions": {"fid": False, "recall": True}, "best": {"by": "fid", "lambda": 1.0, "value": 15.5},
}


def test_round_trip_and_curves(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps(RECORD))
    rec = load_sweep(tmp_path)
    assert rec.to_dict() == RECORD
    assert rec.curve("fid") == ([0.0, 1.0], [16.1, 15.5]) and rec.curve("recall") == ([0.0], [0.35])
    assert rec.run_path(rec.points[0]) == tmp_path / "lambda-1.00"


@pytest.mark.parametrize("text", ["", "{}", json.dumps({**RECORD, "schema": "other"}), json.dumps({**RECORD, "points": 3})])
def test_unreadable_records_are_one_line_errors(tmp_path, text):
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(BenchError) as err:
        load_sweep(tmp_path)
    assert "sweep.json" in str(err.value) and "\n" not in str(err.value)
