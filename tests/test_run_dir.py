"""The run directory: identity checks, journals, compaction, file verification."""

from __future__ import annotations

import json

import pytest

from bench.errors import BenchError
from bench.run_dir import Journal, RunStore, sha256_bytes


def _config(**changes):
    return {"method": "tiny", "method_args": {}, "suite": "smoke", "suite_args": {}, "protocol": {"p": 1},
            "metrics": {}, "seed": 0, "dtype": "fp32", "created_at": "now", **changes}


def test_open_creates_then_resumes_and_refuses_another_identity(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open(_config()) is False
    assert json.loads(store.config_path.read_text())["method"] == "tiny"
    assert store.open(_config(created_at="later")) is True, "a time stamp is not identity"
    with pytest.raises(BenchError, match="different seed") as err:
        store.open(_config(seed=1))
    assert "\n" not in str(err.value)
    (store.images_dir / "00000.png").write_bytes(b"x")
    assert store.open(_config(seed=1), overwrite=True) is False
    assert not (store.images_dir / "00000.png").exists(), "--overwrite clears the old run"


def test_open_removes_temporary_files(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(_config())
    (store.images_dir / ".00001.png.tmp").write_bytes(b"half")
    (store.path / ".results.json.tmp").write_bytes(b"half")
    store.open(_config())
    assert not list(store.path.rglob("*.tmp"))


def test_journal_repairs_a_torn_line_and_compact_folds_journals(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(_config())
    data = b"png bytes"
    store.save_image("images/00000.png", data)
    j = store.journal(0)
    j.append([{"index": 0, "prompt": "a", "path": "images/00000.png", "sha256": sha256_bytes(data)}])
    with open(j.path, "ab") as f:
        f.write(b'{"index": 1, "prom')  # a crash in the middle of an append
    Journal(j.path).append([{"index": 1, "prompt": "b", "path": None, "sha256": "s1"}])
    rows = store.compact()
    assert sorted(rows) == [0, 1] and rows[1]["prompt"] == "b"
    assert not store.journal_dir.exists()
    lines = store.manifest_path.read_text().splitlines()
    assert [json.loads(x)["index"] for x in lines] == [0, 1]
    assert store.file_ok(rows[0]) and not store.file_ok(rows[1])


def test_compact_prefers_the_row_that_matches_the_file(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(_config())
    store.save_image("images/00000.png", b"new")
    store.journal(0).append([{"index": 0, "path": "images/00000.png", "sha256": sha256_bytes(b"new")}])
    store.journal(1).append([{"index": 0, "path": "images/00000.png", "sha256": sha256_bytes(b"old")}])
    assert store.compact()[0]["sha256"] == sha256_bytes(b"new")


def test_file_ok_detects_a_changed_image(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(_config())
    store.save_image("images/00000.png", b"abc")
    row = {"index": 0, "path": "images/00000.png", "sha256": sha256_bytes(b"abc")}
    assert store.file_ok(row)
    (store.images_dir / "00000.png").write_bytes(b"abd")
    assert not store.file_ok(row)


def test_broken_config_is_a_one_line_error(tmp_path):
    store = RunStore(tmp_path / "run")
    store.path.mkdir()
    store.config_path.write_text("{not json")
    with pytest.raises(BenchError, match="not valid JSON"):
        store.open(_config())
