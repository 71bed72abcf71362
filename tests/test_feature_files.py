"""Feature files: written with a checksum, trusted only when it matches, recomputed otherwise."""

from __future__ import annotations

import numpy as np

from bench import feature_files
from bench.feature_files import GeneratedFeatures, load_npz, save_npz
from bench.run_dir import RunStore


def test_round_trip_keeps_the_arrays(tmp_path):
    feats = np.random.default_rng(0).standard_normal((5, 7))
    save_npz(tmp_path / "f.npz", inputs="key-1", features=feats, spec=np.array("{}"))
    data = load_npz(tmp_path / "f.npz", "key-1")
    assert data is not None and np.array_equal(data["features"], feats) and str(data["spec"]) == "{}"


def test_other_inputs_mean_missing_without_a_warning(tmp_path, capsys):
    save_npz(tmp_path / "f.npz", inputs="key-1", features=np.ones((2, 2)))
    assert load_npz(tmp_path / "f.npz", "key-2") is None
    assert load_npz(tmp_path / "missing.npz", "key-1") is None
    assert capsys.readouterr().err == ""


def _rewrite_features(path, new):
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    data["features"] = new
    np.savez(path, **data)


def test_changed_values_are_detected_and_named_once(tmp_path, capsys):
    path = tmp_path / "changed.npz"
    feats = np.arange(6.0).reshape(2, 3)
    save_npz(path, inputs="k", features=feats)
    _rewrite_features(path, feats * 10)  # the checksum no longer matches
    assert load_npz(path, "k") is None
    assert load_npz(path, "k") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "checksum" in err[0]


def test_truncated_or_unchecked_files_count_as_missing(tmp_path, capsys):
    path = tmp_path / "cut.npz"
    save_npz(path, inputs="k", features=np.ones((50, 50)))
    path.write_bytes(path.read_bytes()[:300])
    assert load_npz(path, "k") is None
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, features=np.ones((2, 2)))  # written without a checksum
    assert load_npz(legacy, "") is None
    err = capsys.readouterr().err
    assert "truncated or unreadable" in err and "legacy.npz" in err


def test_generated_features_skip_damaged_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_files, "_warned", set())
    store = RunStore(tmp_path / "run")
    cache = GeneratedFeatures(store, "net-1")
    cache.write_chunk([0, 1], ["a", "b"], np.array([[1.0], [2.0]]), "{}")
    cache.write_chunk([2, 3], ["c", "d"], np.array([[3.0], [4.0]]), "{}")
    assert sorted(cache.load()) == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    (cache.dir / "0000002-00002.npz").write_bytes(b"PK\x03\x04 garbage")
    assert sorted(cache.load()) == [(0, "a"), (1, "b")]
    cache.write_chunk([0, 1, 2], ["a", "b", "c"], np.array([[1.0], [2.0], [3.0]]), "{}")
    assert sorted(p.name for p in cache.dir.glob("*.npz")) == ["0000000-00003.npz", "0000002-00002.npz"]
