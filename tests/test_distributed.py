"""Several processes (``accelerate launch``, gloo on the CPU) give the same images, manifest, features and metrics
as one process; the chunk-to-rank rule; error sharing between ranks."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toy_plugin(folder: Path) -> Path:
    """An installed-looking plug-in (entry point ``bench``) that provides the toy metric in every process."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_toy_plugin.py").write_text(textwrap.dedent("""
        from conftest import ToyExtractor, ToyFID

        from bench import hookimpl
        from bench.errors import BenchError

        class ToyRefuses(ToyFID):  # fails while rank 0 scores, after the other ranks finished their part
            def compute(self, ctx):
                raise BenchError("toy_refuses will not score this run")

        @hookimpl
        def register_metrics(register):
            register("toy_fid", ToyFID, description="test metric")
            register("toy_refuses", ToyRefuses, description="test metric that fails")

        @hookimpl
        def register_feature_extractors(register):
            register("toy", ToyExtractor, description="test network")
    """))
    dist = folder / "bench_toy_plugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench]\ntoy = bench_toy_plugin\n")
    return folder


def _run_args(root: Path, out: Path, metric: str = "toy_fid") -> list[str]:
    return ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(root), "--suite-args",
            "num_prompts=10", "--batch-size", "2", "--metrics", metric, "--device", "cpu", "--out", str(out)]


def _accelerate_launch(root: Path, out: Path, metric: str = "toy_fid") -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
            "-m", "bench", *_run_args(root, out, metric)]


def _communicate(procs: list[subprocess.Popen], timeout: float) -> list[tuple[str, str]]:
    """Every process's (stdout, stderr); on a timeout all are killed and the failure shows what each printed."""
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        shown = [f"process {i}:\n{o[-2000:]}{e[-2000:]}" for i, (o, e) in enumerate(p.communicate() for p in procs)]
        pytest.fail(f"launch did not finish in {timeout:.0f} s\n" + "\n".join(shown))


def _files(run_dir: Path) -> dict[str, bytes]:
    out = {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in (run_dir / "images").rglob("*") if p.is_file()}
    out["manifest.jsonl"] = (run_dir / "manifest.jsonl").read_bytes()
    return out


def _single_run_and_launch_env(coco_root: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The single-process run to compare with, and the environment launched processes need."""
    single = tmp_path / "single"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(_run_args(coco_root, single)) == 0, err.getvalue()
    plugin_dir = _toy_plugin(tmp_path / "plugin")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), str(plugin_dir)]),
           "OMP_NUM_THREADS": "1", "ACCELERATE_DISABLE_RICH": "1"}
    return single / "coco30k-tiny", env


def test_two_processes_give_what_one_gives(coco_root, tmp_path, toy):
    one, env = _single_run_and_launch_env(coco_root, tmp_path)
    two_out = tmp_path / "two"
    proc = subprocess.run(_accelerate_launch(coco_root, two_out), capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    two = two_out / "coco30k-tiny"

    assert proc.stdout.count("tiny on coco30k") == 1, "the metrics are computed and reported once"
    assert _files(two) == _files(one), "same images and manifest"
    r1 = json.loads((one / "results.json").read_text())
    r2 = json.loads((two / "results.json").read_text())
    assert r2["metrics"] == r1["metrics"]
    assert r2["config"]["world_size"] == 2 and r1["config"]["world_size"] == 1
    assert r2["images"]["generated_this_run"] == 10
    assert not list((two / "journal").glob("*.jsonl"))
    (f1,), (f2,) = [list((d / "features").glob("toy-*")) for d in (one, two)]
    names = sorted(p.name for p in f1.glob("*.npz"))
    assert names == sorted(p.name for p in f2.glob("*.npz")) and len(names) == 5
    for name in names:
        assert np.array_equal(np.load(f1 / name)["features"], np.load(f2 / name)["features"])


def test_two_nodes_give_what_one_process_gives(coco_root, tmp_path, toy):
    """torchrun on two "nodes" (two agents on this machine, one process each, static rendezvous): ranks differ
    from local ranks, and the result is still the single process's."""
    one, env = _single_run_and_launch_env(coco_root, tmp_path)
    port = str(_free_port())
    shared = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
                               str(node), "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port",
                               port, "-m", "bench", *_run_args(coco_root, shared)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
             for node in (0, 1)]
    outputs = _communicate(procs, 240)
    for p, (o, e) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, o[-3000:] + e[-3000:]
    assert outputs[0][0].count("tiny on coco30k") == 1 and "tiny on coco30k" not in outputs[1][0]
    two = shared / "coco30k-tiny"
    assert _files(two) == _files(one)
    r1 = json.loads((one / "results.json").read_text())
    r2 = json.loads((two / "results.json").read_text())
    assert r2["metrics"] == r1["metrics"] and r2["config"]["world_size"] == 2


def test_an_error_while_rank_0_scores_ends_every_rank(coco_root, tmp_path, toy):
    """Rank 0 fails while scoring, after the other rank finished its part and left: the launch ends promptly,
    with rank 0's one-line error and no traceback from either rank; the images stay for a corrected rerun."""
    _, env = _single_run_and_launch_env(coco_root, tmp_path)
    out = tmp_path / "two"
    proc = subprocess.Popen(_accelerate_launch(coco_root, out, "toy_refuses"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    ((stdout, stderr),) = _communicate([proc], 120)
    assert proc.returncode != 0
    assert "toy_refuses will not score this run" in stderr
    assert not re.search(r'File "[^"]*/bench/', stdout + stderr), stderr[-3000:]  # the launcher's own may show
    assert len(list((out / "coco30k-tiny" / "images").rglob("*.png"))) == 10


def test_chunks_go_round_robin_to_ranks():
    from bench.distributed import owner
    from bench.run_features import chunks

    parts = chunks(list(range(11)), 3)
    assert [list(c) for c in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    assert [owner(c, 2) for c in range(4)] == [0, 1, 0, 1]
    assert [owner(c, 3) for c in range(4)] == [0, 1, 2, 0]


def test_single_process_coordination_is_a_no_op(monkeypatch):
    from bench import distributed
    from bench.errors import BenchError

    for var in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(var, raising=False)
    d = distributed.init("cpu")
    assert (d.rank, d.world_size, d.is_main, d.active) == (0, 1, True, False)
    assert d.agree(None, {"x": 1}) == [{"x": 1}]
    with pytest.raises(BenchError, match="disk full"):
        d.agree("disk full while writing x", None)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(BenchError, match="WORLD_SIZE"):
        distributed.launched_world_size()


@pytest.mark.parametrize("world_size", [None, "2"])
def test_a_launched_process_ends_without_the_interpreters_teardown(world_size):
    """One process of a launched job exits with the command's status, its output flushed and no teardown run
    (where gloo can abort); a plain process goes on to exit normally."""
    code = ("import atexit; atexit.register(lambda: print('teardown')); "
            "from bench.distributed import end_process; print('done', end=''); end_process(3)")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")}
    if world_size:
        env["WORLD_SIZE"] = world_size
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ("done" if world_size else "doneteardown\n")
