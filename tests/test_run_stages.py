"""The run's stages: each step timed by its own clock (a metric's clock pauses while its features are computed),
and scoring with the features streamed in the same process instead of reading their files back, with results
bit-identical to those of a resumed run, which does read them."""

from __future__ import annotations

import json
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from bench.errors import BenchError
from bench.timing import Timings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A hand-driven clock for bench.timing: tests advance ``clock[0]``."""
    import bench.timing as timing

    now = [0.0]
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    return now


def test_an_own_clock_pauses_while_blocks_inside_it_run(clock: list[float]) -> None:
    t = Timings()
    with t.time("stage/score"):
        clock[0] += 1
        with t.time("metric/m", own=True):
            clock[0] += 2
            with t.time("features/x"):
                clock[0] += 4
            clock[0] += 8
            with t.time("text_features/y"):
                clock[0] += 16
                with t.time("features/z"):  # nested twice: counted under its own key, and inside text_features
                    clock[0] += 32
        clock[0] += 64
    with t.time("metric/m", own=True):  # a second block adds to the first
        clock[0] += 128
    assert t.as_dict() == {"stage/score": 127.0, "metric/m": 138.0, "features/x": 4.0,
                           "text_features/y": 48.0, "features/z": 32.0}


def test_blocks_in_other_threads_do_not_pause_a_clock(clock: list[float]) -> None:
    t = Timings()
    with t.time("metric/m", own=True):
        clock[0] += 1

        def other() -> None:
            with t.time("features/x"):
                clock[0] += 2

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert t.as_dict() == {"metric/m": 3.0, "features/x": 2.0}


def test_the_slowest_rank_sets_each_figure() -> None:
    t = Timings()
    t.add("generation", 2.0)
    t.add("load", 5.0)
    t.merge_slowest({"generation": 3.0, "load": 1.0, "encode_save": 0.5})
    assert t.as_dict() == {"generation": 3.0, "load": 5.0, "encode_save": 0.5}


# -- streamed features are scored from memory ------------------------------------------------------------------
def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(root), "--suite-args",
            "num_prompts=7", "--batch-size", "3", "--metrics", "toy_fid", "--device", "cpu", "--out", str(out),
            *extra]


def _count_feature_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every generated-feature file read from now on (paths under a run's features/)."""
    import bench.feature_files as feature_files

    real = feature_files.load_npz
    reads: list[Path] = []

    def counting(path: Path, inputs: str = "") -> Any:
        if path.parent.parent.name == "features":  # <run>/features/<network>/<chunk>.npz
            reads.append(path)
        return real(path, inputs)

    monkeypatch.setattr(feature_files, "load_npz", counting)
    return reads


@pytest.mark.parametrize("save", [[], ["--no-save-images"]], ids=["images", "no-images"])
def test_scoring_uses_the_streamed_features_and_equals_a_resumed_run(coco_root, tmp_path, toy, monkeypatch,
                                                                      save) -> None:
    import bench.run_dir as run_dir_module

    reads = _count_feature_reads(monkeypatch)
    rc, _, err = run_cli(*_args(coco_root, tmp_path / "fresh", *save))
    assert rc == 0, err
    fresh_dir = tmp_path / "fresh" / "coco30k-tiny"
    fresh = json.loads((fresh_dir / "results.json").read_text())
    assert reads == [], "scoring read back the features this process had just streamed"
    assert len(list((fresh_dir / "features").glob("toy-*/*.npz"))) == 3, "streamed features are kept on disk"
    assert {"stage/plan", "stage/generate", "stage/gather", "stage/score", "metric/toy_fid"} <= set(fresh["timing_s"])

    # the same run, stopped after its first chunk, then resumed: the first chunk's features come from its file
    real_append = run_dir_module.Journal.append
    appended = {"n": 0}

    def failing_append(self: Any, rows: Any) -> None:
        appended["n"] += 1
        if appended["n"] == 2:
            raise BenchError("stopped for the test")
        real_append(self, rows)

    monkeypatch.setattr(run_dir_module.Journal, "append", failing_append)
    out = tmp_path / "resumed"
    rc, _, err = run_cli(*_args(coco_root, out, *save))
    assert rc == 2 and "stopped for the test" in err, err
    monkeypatch.setattr(run_dir_module.Journal, "append", real_append)
    rc, _, err = run_cli(*_args(coco_root, out, *save))
    assert rc == 0, err
    resumed = json.loads((out / "coco30k-tiny" / "results.json").read_text())
    assert resumed["images"]["resumed"] is True and resumed["images"]["generated_this_run"] == 4
    assert reads, "a resumed run reads the features of the chunks finished before"
    assert resumed["metrics"] == fresh["metrics"]  # exact: JSON floats round-trip
    # and once more with nothing to do: every feature from its file
    del reads[:]
    rc, _, err = run_cli(*_args(coco_root, out, *save))
    assert rc == 0, err
    again = json.loads((out / "coco30k-tiny" / "results.json").read_text())
    assert len(reads) == (3 if not save else 6)  # without images, finished samples are verified by their features
    assert again["metrics"] == fresh["metrics"]
