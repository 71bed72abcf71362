"""The generation engine: crash safety (SIGKILL anywhere, then resume), features kept without images, broken
images counted, disk full, journal and manifest mechanics, and the time budget.

Most runs here use a toy metric (``toy_fid``: Frechet distance of 12-d features made from 8 x 8 thumbnails
by a fixed random projection), registered as an ordinary plug-in, so the tests exercise the engine (feature
streaming, caching, reference features, resuming) in milliseconds instead of running Inception on a CPU.
"""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import use_toy
from helpers import run_cli

from bench import hookimpl, plugins
from bench.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def coco_args(root: Path, out: Path, *extra: str, n: int = 10, batch: int = 2) -> list[str]:
    return ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(root), "--suite-args",
            f"num_prompts={n}", "--batch-size", str(batch), "--metrics", "toy_fid", "--device", "cpu",
            "--out", str(out), *extra]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every final file of a run that must not depend on interruptions (images and manifest)."""
    files = {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in (run_dir / "images").rglob("*") if p.is_file()}
    files["manifest.jsonl"] = (run_dir / "manifest.jsonl").read_bytes()
    return files


def assert_no_partial_files(run_dir: Path) -> None:
    """Every image under a final name decodes completely, and every journaled row points at a matching file."""
    from PIL import Image

    from bench.run_dir import RunStore

    for p in (run_dir / "images").rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            with Image.open(p) as im:
                im.load()
    store = RunStore(run_dir)
    for row in store.read_manifest().values():
        assert store.file_ok(row), f"row {row['index']} has no matching file"


# -- killing a run at every stage ------------------------------------------------------------------------------
def _child(argv: list[str], env: dict[str, str]) -> None:
    """Entry point of a forked run: quiet, with the toy metric, optionally told where to kill itself."""
    import torch

    torch.set_num_threads(1)
    os.environ.update(env)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    use_toy()
    os._exit(main(argv))


_PRELOAD = ["torch", "numpy", "PIL.Image", "diffusers.models.unets.unet_2d_condition",
            "diffusers.models.autoencoders.autoencoder_kl", "transformers.models.clip.modeling_clip",
            "open_clip.tokenizer", "bench.cli", "bench.runner", "bench.suites.coco", "methods.tiny", "test_engine"]


def _forkserver() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def run_child(ctx: Any, argv: list[str], env: dict[str, str] | None = None, kill_when: Any = None,
              timeout: float = 120) -> int:
    """Run the CLI in a fresh (forked) process; ``kill_when(run)`` polled -> SIGKILL from outside."""
    proc = ctx.Process(target=_child, args=(argv, env or {}))
    proc.start()
    deadline = time.monotonic() + timeout
    while proc.is_alive() and time.monotonic() < deadline:
        if kill_when is not None and kill_when():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.join(timeout=max(1.0, deadline - time.monotonic()))
    if proc.is_alive():
        proc.kill()
        pytest.fail(f"run did not finish in {timeout} s: {argv}")
    return proc.exitcode


def test_sigkill_anywhere_then_rerun_gives_the_uninterrupted_result(coco_root, tmp_path, toy):
    """Kill the same command with SIGKILL at each stage in turn (mid image write, after an image, after a
    feature file, mid journal line, after a journal line, mid manifest compaction, and once from outside at a
    random moment); re-running it finishes the job with the same images, manifest and metrics as a run that
    was never interrupted, and no partial file is ever left under a final name."""
    reference_out = tmp_path / "uninterrupted"
    rc, _, err = run_cli(*coco_args(coco_root, reference_out))
    assert rc == 0, err
    ref_dir = reference_out / "coco30k-tiny"
    expected = snapshot(ref_dir)
    expected_results = json.loads((ref_dir / "results.json").read_text())

    out = tmp_path / "killed"
    run_dir = out / "coco30k-tiny"
    argv = coco_args(coco_root, out)
    ctx = _forkserver()

    def images_written(k: int) -> Any:
        return lambda: (run_dir / "images").is_dir() and sum(
            1 for p in (run_dir / "images").iterdir() if p.suffix == ".png") >= k

    # killed from outside once a few images exist, then at named points inside the engine
    assert run_child(ctx, argv, kill_when=images_written(3)) in (-signal.SIGKILL, 0)
    assert_no_partial_files(run_dir)
    kills = ["image-partial:1", "image:2", "features:1", "journal-torn:1", "journal:1", "compact:1"]
    for point in kills:
        before = len(list((run_dir / "images").glob("*.png")))
        code = run_child(ctx, argv, env={"BENCH_CRASH_AT": point})
        assert code == -signal.SIGKILL, f"{point}: the run was expected to be killed, exit code {code}"
        assert_no_partial_files(run_dir)
        assert len(list((run_dir / "images").glob("*.png"))) >= before, f"{point}: finished images were lost"
        if point == "image-partial:1":
            assert list((run_dir / "images").glob(".*.tmp")), "the killed write should have left a temporary file"

    rc, _, err = run_cli(*argv)
    assert rc == 0, err
    results = json.loads((run_dir / "results.json").read_text())
    assert snapshot(run_dir) == expected
    assert results["metrics"] == expected_results["metrics"]
    assert results["images"]["resumed"] is True
    assert not list(run_dir.rglob("*.tmp")), "temporary files of killed writes must be cleaned up"
    assert not list((run_dir / "journal").glob("*.jsonl")), "journals are folded into the manifest"
    # a further re-run has nothing to do and changes nothing
    rc, _, err = run_cli(*argv)
    assert rc == 0 and json.loads((run_dir / "results.json").read_text())["images"]["generated_this_run"] == 0
    assert snapshot(run_dir) == expected


# -- features without images, broken images ---------------------------------------------------------------------
def test_no_save_images_keeps_features_and_scores_identically(coco_root, tmp_path, toy):
    rc, _, err = run_cli(*coco_args(coco_root, tmp_path / "saved", n=6))
    assert rc == 0, err
    saved = json.loads((tmp_path / "saved" / "coco30k-tiny" / "results.json").read_text())
    args = coco_args(coco_root, tmp_path / "nosave", "--no-save-images", n=6)
    rc, _, err = run_cli(*args)
    assert rc == 0, err
    run_dir = tmp_path / "nosave" / "coco30k-tiny"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"] == saved["metrics"]
    assert results["images"]["saved"] is False
    assert not [p for p in (run_dir / "images").rglob("*") if p.is_file()]
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [None] * 6 and all(r["sha256"] for r in rows)
    saved_rows = (tmp_path / "saved" / "coco30k-tiny" / "manifest.jsonl").read_text().splitlines()
    assert [r["sha256"] for r in rows] == [json.loads(x)["sha256"] for x in saved_rows]
    # resuming keeps the features: nothing is generated again
    rc, _, err = run_cli(*args)
    assert rc == 0 and json.loads((run_dir / "results.json").read_text())["images"]["generated_this_run"] == 0


def test_broken_images_are_counted_and_reported(coco_root, tmp_path, toy):
    from methods.tiny import TinyGenerator

    class Broken(TinyGenerator):
        name = "broken"

        def generate(self, noise, prompts):
            images = super().generate(noise, prompts).clone()
            for row, prompt in enumerate(prompts):
                if prompt == self.bad[0]:
                    images[row] = float("nan")
                elif prompt == self.bad[1]:
                    images[row] = 0.0
                elif prompt == self.bad[2]:
                    images[row] = 0.5
            return images

    class BrokenPlugin:
        @hookimpl
        def register_methods(self, register):
            register("broken", Broken)

    plugins.register_plugin(BrokenPlugin(), name="broken")
    from bench.suites.coco import Coco30kSuite

    prompts = [it.prompt for it in Coco30kSuite(data_root=str(coco_root), num_prompts=6).prompts()]
    Broken.bad = (prompts[1], prompts[2], prompts[4])
    args = coco_args(coco_root, tmp_path, n=6)
    args[args.index("tiny")] = "broken"
    rc, out, err = run_cli(*args)
    assert rc == 0, err
    results = json.loads((tmp_path / "coco30k-broken" / "results.json").read_text())
    assert results["images"]["flagged"] == {"nan": 1, "black": 1, "constant": 1}
    assert results["images"]["flagged_indices"] == {"nan": [1], "black": [2], "constant": [4]}
    assert "WARNING: 3 broken image(s)" in out and "1 nan" in out
    assert "broken image(s)" in err
    rows = [json.loads(x) for x in (tmp_path / "coco30k-broken" / "manifest.jsonl").read_text().splitlines()]
    assert [r["flag"] for r in rows] == [None, "nan", "black", None, "constant", None]


def test_uint8_conversion_and_flags_match_the_reference_rules():
    import torch

    from bench.images import image_flag, to_uint8, to_uint8_and_flags

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.2, 1.2, size=(5, 3, 7, 9)).astype(np.float32)
    x[1, 0, 0, 0] = np.nan
    x[2] = 0.0
    x[3] = 0.25
    x[4, :, :3] = np.inf
    u8, flags = to_uint8_and_flags(torch.from_numpy(x))
    by_hand = (np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.array_equal(u8, by_hand) and np.array_equal(to_uint8(x), by_hand)
    assert flags == [image_flag(img) for img in x] == [None, "nan", "black", "constant", "nan"]


# -- disk full ------------------------------------------------------------------------------------------------
def test_disk_full_stops_cleanly_and_the_rerun_finishes(coco_root, tmp_path, toy, monkeypatch):
    import bench.run_dir as store

    rc, _, err = run_cli(*coco_args(coco_root, tmp_path / "ref", n=8))
    assert rc == 0, err
    expected = snapshot(tmp_path / "ref" / "coco30k-tiny")

    real_write = store._write_fd
    calls = {"n": 0}

    def failing_write(fd: int, data: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # the fifth file write: half of it lands, then the disk is full
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(store, "_write_fd", failing_write)
    out = tmp_path / "full"
    rc, _, err = run_cli(*coco_args(coco_root, out, n=8))
    assert rc == 2 and err.count("bench: error: ") == 1, err
    line = err[err.index("bench: error: "):]
    assert line.startswith("bench: error: disk full while writing") and line.count("\n") == 1
    assert "run the same command" in line
    run_dir = out / "coco30k-tiny"
    assert not list(run_dir.rglob("*.tmp")), "a failed write must not leave its temporary file"
    assert_no_partial_files(run_dir)
    monkeypatch.setattr(store, "_write_fd", real_write)
    rc, _, err = run_cli(*coco_args(coco_root, out, n=8))
    assert rc == 0, err
    assert snapshot(run_dir) == expected


def test_journal_append_failure_restores_the_file(tmp_path, monkeypatch):
    import bench.run_dir as store
    from bench.errors import BenchError

    journal = store.Journal(tmp_path / "j.jsonl")
    journal.append([{"index": 0, "sha256": "a"}])
    size = (tmp_path / "j.jsonl").stat().st_size

    def full(fd: int, data: Any) -> None:
        os.write(fd, bytes(data)[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_fd", full)
    with pytest.raises(BenchError, match="disk full"):
        journal.append([{"index": 1, "sha256": "b"}])
    assert (tmp_path / "j.jsonl").stat().st_size == size


def test_torn_journal_line_is_cut_and_compaction_prefers_the_file(tmp_path):
    from bench.run_dir import RunStore, sha256_bytes

    store = RunStore(tmp_path / "run")
    store.open({"method": "m"})
    (store.images_dir / "a.png").write_bytes(b"new")
    store.journal(0).append([{"index": 0, "path": "images/a.png", "sha256": sha256_bytes(b"old")}])
    store.journal(1).append([{"index": 0, "path": "images/a.png", "sha256": sha256_bytes(b"new")},
                             {"index": 1, "path": None, "sha256": "x"}])
    with open(store.journal_dir / "rank-0.jsonl", "ab") as f:
        f.write(b'{"index": 7, "sha')  # a crash in the middle of an append
    assert 7 not in store.read_manifest()
    store.journal(0).append([{"index": 2, "path": None, "sha256": "y"}])
    assert sorted(store.read_manifest()) == [0, 1, 2]
    rows = store.compact()
    assert rows[0]["sha256"] == sha256_bytes(b"new")
    lines = store.manifest_path.read_text().splitlines()
    assert [json.loads(x)["index"] for x in lines] == [0, 1, 2]
    assert not store.journal_paths()


# -- the time budget --------------------------------------------------------------------------------------------
def test_results_carry_a_time_budget_and_orchestration_is_cheap(smoke_run):
    """results.json says where time went; store, manifest, hashing and coordination stay under 10% of a smoke run."""
    timing = smoke_run["results"]["timing_s"]
    for key in ("load", "generation", "encode_save", "orchestration", "total"):
        assert key in timing, key
    assert any(k.startswith("features/inception") for k in timing)
    assert any(k.startswith("reference_features/inception") for k in timing)
    assert "metric/fid" in timing and "metric/precision_recall" in timing
    assert timing["orchestration"] < 0.10 * timing["total"], timing


def test_streamed_features_equal_features_from_the_saved_files(coco_root, tmp_path, toy):
    """Deleting the streamed features and re-scoring recomputes them from the files: identical rows and
    metrics (the chunk rule makes the batches the same)."""
    args = coco_args(coco_root, tmp_path, n=7, batch=3)
    rc, _, err = run_cli(*args)
    assert rc == 0, err
    run_dir = tmp_path / "coco30k-tiny"
    first = json.loads((run_dir / "results.json").read_text())
    feature_dir = next((run_dir / "features").glob("toy-*"))
    streamed = {p.name: dict(np.load(p)) for p in sorted(feature_dir.glob("*.npz"))}
    assert sorted(streamed) == ["0000000-00003.npz", "0000003-00003.npz", "0000006-00001.npz"]
    for p in feature_dir.glob("*.npz"):
        p.unlink()
    rc, _, err = run_cli(*args)
    assert rc == 0, err
    again = {p.name: dict(np.load(p)) for p in sorted(feature_dir.glob("*.npz"))}
    assert sorted(again) == sorted(streamed)
    for name in streamed:
        assert np.array_equal(again[name]["features"], streamed[name]["features"])
        assert list(again[name]["sha256"]) == list(streamed[name]["sha256"])
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == first["metrics"]


def test_png_writer_is_lossless_and_standard():
    from PIL import Image

    from bench.images import encode_png

    rng = np.random.default_rng(1)
    for shape in ((1, 1, 3), (7, 5, 3), (64, 48, 3)):
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        with Image.open(io.BytesIO(encode_png(img))) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert np.array_equal(np.asarray(im), img)


def test_a_limit_run_extends_to_exactly_the_full_run(coco_root, tmp_path, toy):
    """--limit N then the full command: the same images, manifest and metrics as the full command alone, even
    though the limit cut a batch in two (the cut batch is generated whole)."""
    rc, _, err = run_cli(*coco_args(coco_root, tmp_path / "full", n=9, batch=4))
    assert rc == 0, err
    full_dir = tmp_path / "full" / "coco30k-tiny"
    out = tmp_path / "grown"
    rc, _, err = run_cli(*coco_args(coco_root, out, "--limit", "5", n=9, batch=4))
    assert rc == 0, err
    grown = out / "coco30k-tiny"
    assert sorted(p.name for p in (grown / "images").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    rc, _, err = run_cli(*coco_args(coco_root, out, n=9, batch=4))
    assert rc == 0, err
    assert json.loads((grown / "results.json").read_text())["images"]["generated_this_run"] == 4
    assert snapshot(grown) == snapshot(full_dir)
    assert json.loads((grown / "results.json").read_text())["metrics"] == \
        json.loads((full_dir / "results.json").read_text())["metrics"]


def test_fixed_batch_generators_get_the_last_chunk_padded(coco_root, tmp_path, toy):
    """A compiled generator sees one batch shape only: the run's last, shorter chunk is padded to the batch
    size and only the wanted images are kept; they match the unpadded run up to batched-kernel rounding."""
    from PIL import Image

    from methods.tiny import TinyGenerator

    class Fixed(TinyGenerator):
        name = "fixed"
        calls: list[int] = []

        @property
        def fixed_batch(self) -> bool:
            return True

        def encode_prompts(self, prompts):
            Fixed.calls.append(len(prompts))
            return super().encode_prompts(prompts)

    class FixedPlugin:
        @hookimpl
        def register_methods(self, register):
            register("fixed", Fixed)

    plugins.register_plugin(FixedPlugin(), name="fixed")
    args = coco_args(coco_root, tmp_path / "fixed", n=7, batch=3)
    args[args.index("tiny")] = "fixed"
    rc, _, err = run_cli(*args)
    assert rc == 0, err
    assert Fixed.calls == [3, 3, 3]
    rc, _, err = run_cli(*coco_args(coco_root, tmp_path / "plain", n=7, batch=3))
    assert rc == 0, err
    fixed_dir, plain_dir = tmp_path / "fixed" / "coco30k-fixed", tmp_path / "plain" / "coco30k-tiny"
    names = sorted(p.name for p in (fixed_dir / "images").iterdir())
    assert names == sorted(p.name for p in (plain_dir / "images").iterdir()) == [f"{i:05d}.png" for i in range(7)]
    for name in names:
        a = np.asarray(Image.open(fixed_dir / "images" / name), dtype=np.int16)
        b = np.asarray(Image.open(plain_dir / "images" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= (0 if name != "00006.png" else 1)


def test_worker_count_does_not_change_anything(coco_root, tmp_path, toy):
    rc, _, err = run_cli(*coco_args(coco_root, tmp_path / "one", "--workers", "1", n=5))
    assert rc == 0, err
    rc, _, err = run_cli(*coco_args(coco_root, tmp_path / "three", "--workers", "3", n=5))
    assert rc == 0, err
    one, three = tmp_path / "one" / "coco30k-tiny", tmp_path / "three" / "coco30k-tiny"
    assert snapshot(one) == snapshot(three)
    assert json.loads((one / "results.json").read_text())["metrics"] == \
        json.loads((three / "results.json").read_text())["metrics"]


def test_background_threads_select_the_runs_gpu(monkeypatch):
    """Threads start on CUDA device 0: the sink's threads switch to the run's device when it names an index
    (cuda:<local rank> in multi-GPU runs), and leave a bare 'cuda' (the current device) alone."""
    import torch

    from bench.sink import Sink

    calls: list[Any] = []
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    sink = Sink.__new__(Sink)
    for device in (torch.device("cuda"), torch.device("cpu"), torch.device("cuda", 1)):
        sink.device = device
        sink._use_device()
    assert calls == [torch.device("cuda", 1)]
