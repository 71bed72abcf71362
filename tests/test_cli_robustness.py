"""Every sub-command of `bench` and `training`, fed malformed and hostile arguments and files: no traceback,
exit status 0 or 2, one line of error, and nothing finished lost."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from bench import plugins

REPO = Path(__file__).resolve().parents[1]


def _cli(prog: str, argv: list[str]) -> tuple[int, str, str]:
    if prog == "bench":
        from bench.cli import main
    else:
        from training.cli import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own --help / --version exit
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


def _check(prog: str, argv: list[str], want: int) -> str:
    rc, _, err = _cli(prog, argv)
    assert "Traceback" not in err, err
    assert rc == want, f"{prog} {argv}: exit {rc}, stderr: {err}"
    if want == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
        return lines[0]
    return err


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "a-file").write_text("not a folder")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (root / "garbage.toml").write_text("[[[ not toml")
    (root / "empty.json").write_text("{}")
    return {"root": root, "file": root / "a-file", "binary": root / "binary.txt", "toml": root / "garbage.toml",
            "missing": root / "no-such-thing", "json": root / "empty.json"}


RUN = ["run", "--method", "tiny", "--suite", "smoke", "--limit", "1", "--metrics", "none", "--device", "cpu"]


def _bench_cases(p: dict[str, Path]) -> list[list[str]]:
    out = str(p["root"] / "runs")
    run = [*RUN, "--out", out]
    return [
        [], ["no-such-command"], ["list", "nothing"], ["run"], ["run", "--method", "tiny"],
        ["run", "--method", "tny", "--suite", "smoke"], ["run", "--method", "tiny", "--suite", "smok"],
        [*run, "--batch-size", "abc"], [*run, "--batch-size", "-1"], [*run, "--batch-size", "0"],
        [*run, "--limit", "0"], [*run, "--limit", "99999999999999999999"], [*run, "--seed", "nan"],
        [*run, "--workers", "0"], [*run, "--dtype", "fp8"], [*run, "--device", "tpu"],
        [*run, "--method-args", "=,,"], [*run, "--method-args", "weights_seed=-5"],
        [*run, "--method-args", "weights_seed=1e999"], [*run, "--method-args", "nope=1"],
        [*run, "--metric-args", "fid"], [*run, "--metric-args", "fid.weights=random"],
        [*run, "--suite-args", "eval_size=-3"], [*run, "--suite-args", "eval_resample=magic"],
        [*run, "--metrics", ","], [*run, "--metrics", "fdi"], [*run, "--prompts", str(p["missing"])],
        *([*run, "--metrics", m, "--metric-args", f"{m}.weights=random"]  # one sample is too few for these
          for m in ("fid", "kid", "inception_score", "precision_recall", "fd_dinov2")),
        [*RUN, "--out", str(p["file"])], [*RUN, "--out", str(p["file"] / "sub")],
        [*run, "--run-name", ".."], [*run, "--run-name", "a/b"], [*run, "--run-name", ""],
        ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(p["file"]), "--out", out],
        ["run", "--method", "tiny", "--suite", "coco30k", "--prompts", str(p["binary"]), "--out", out],
        ["run", "--method", "tiny", "--suite", "coco30k", "--prompts", str(p["json"]), "--out", out],
        ["run", "--method", "sd-turbo", "--method-args", "size=tiny,decode_chunk=-1", "--suite", "smoke", "--out", out],
        ["run", "--method", "sd21", "--method-args", "size=tiny,guidance=nan", "--suite", "smoke", "--out", out],
        ["run", "--method", "sd21", "--method-args", "size=tiny,steps=0", "--suite", "smoke", "--out", out],
        ["latency", "--method", "nope"], ["latency", "--method", "tiny", "--iters", "0"],
        ["latency", "--method", "tiny", "--batch-size", "-1"], ["latency", "--method", "tiny", "--warmup", "-1"],
        ["data", "nothing"], ["data", "coco", "--root", str(p["file"])],
        ["report", "--runs", str(p["missing"])], ["report", "--runs", str(p["file"]), "--out", out],
        ["report", str(p["binary"])], ["report", "--map", "=", "--runs", out], ["reproduce"],
        ["reproduce", "table99"], ["reproduce", "table2"],
        ["sweep-merge"], ["sweep-merge", "--a", "tiny", "--b", "tiny", "--suite", "smoke", "--out", out],
        ["sweep-merge", "--a", f"sbv2:weights={p['missing']}", "--b", "sd-turbo:size=tiny", "--suite", "smoke"],
        *(["sweep-merge", "--a", "sd-turbo:size=tiny", "--b", "sd-turbo:size=tiny", "--suite", "smoke",
           "--lambdas", grid, "--out", out] for grid in ("nan", "1:0:0.1", ",", "0:1:0", "a,b")),
        ["interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--steps", "0"],
        ["interpolate", "--method", "tiny", "--mode", "prompt", "--prompt", "x"],
        ["interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--seeds", "a,b"],
        ["interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--out", str(p["file"])],
    ]


def _training_cases(p: dict[str, Path]) -> list[list[str]]:
    d = str(p["root"] / "train-out")
    return [
        [], ["distill"], ["distill", "--preset", "nope", "--output-dir", d],
        ["distill", "--preset", "tiny", "--output-dir", str(p["file"])],
        ["distill", "--preset", "tiny", "--set", "student_lr=-1", "--output-dir", d],
        ["distill", "--preset", "tiny", "--set", "student_lora_rank=0", "--output-dir", d],
        ["distill", "--preset", "tiny", "--set", "nonsense=1", "--output-dir", d],
        ["distill", "--preset", "tiny", "--max-steps", "-3", "--output-dir", d],
        ["distill", "--config", str(p["toml"]), "--output-dir", d],
        ["distill", "--preset", "tiny", "--resume", str(p["missing"]), "--output-dir", d],
        ["export", "--run", str(p["missing"]), "--output-dir", d],
        ["merge", "--a", str(p["missing"]), "--b", str(p["missing"]), "--lambda", "0.5", "--output-dir", d],
        ["merge", "--a", str(p["file"]), "--b", str(p["file"]), "--lambda", "nan", "--output-dir", d],
        ["presets", "--show", "nope"],
    ]


def test_bench_malformed_arguments(hostile, one_thread):
    for argv in _bench_cases(hostile):
        _check("bench", argv, 2)
    assert not (hostile["root"] / "runs").exists() or not list((hostile["root"] / "runs").rglob("config.json")), \
        "a run that failed before its generator loaded leaves no run behind"


def test_training_malformed_arguments(hostile):
    for argv in _training_cases(hostile):
        _check("training", argv, 2)


@pytest.mark.parametrize("kind", ["methods", "suites", "metrics"])
def test_every_numeric_option_refuses_nonsense(kind, hostile, monkeypatch):
    """Generated cases: every numeric option of every built-in plug-in, given text, NaN and a value far out of
    range, stops with one line before any network is built."""
    from bench.options import Option

    reg = getattr(plugins.current(), kind)
    checked = 0
    for entry in reg.entries():
        cls = entry.resolve()
        for name, opt in getattr(cls, "options", {}).items():
            if not isinstance(opt, Option) or opt.type not in (int, float):
                continue
            assert opt.minimum is not None, f"{kind[:-1]} {entry.name}: option {name} declares no minimum"
            for bad in ("abc", "nan", "-1e12", "1e999"):
                out = ["--device", "cpu", "--out", str(hostile["root"] / "opt-runs")]
                if kind == "methods":
                    argv = ["run", "--suite", "smoke", "--metrics", "none", "--method", entry.name,
                            "--method-args", f"{name}={bad}", *out]
                elif kind == "suites":
                    argv = ["run", "--method", "tiny", "--metrics", "none", "--suite", entry.name,
                            "--suite-args", f"{name}={bad}", *out]
                else:
                    argv = ["run", "--method", "tiny", "--suite", "smoke", "--metrics", entry.name,
                            "--metric-args", f"{entry.name}.{name}={bad}", *out]
                line = _check("bench", argv, 2)
                assert name in line, line
                checked += 1
    assert checked > 0


def test_damaged_caches_heal_and_nothing_finished_is_lost(tmp_path, toy, one_thread, monkeypatch):
    from bench import feature_files

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(feature_files, "_warned", set())
    argv = ["run", "--method", "tiny", "--suite", "smoke", "--limit", "4", "--batch-size", "2", "--metrics",
            "toy_fid", "--device", "cpu", "--out", str(tmp_path / "runs")]
    _check("bench", argv, 0)
    run_dir = tmp_path / "runs" / "smoke-tiny"
    first = json.loads((run_dir / "results.json").read_text())
    images = {p.name: p.read_bytes() for p in (run_dir / "images").iterdir()}
    chunk = next((run_dir / "features").rglob("0000000-*.npz"))
    chunk.write_bytes(b"garbage")
    (ref,) = (tmp_path / "cache" / "features").glob("smoke-toy-*.npz")
    ref.write_bytes(ref.read_bytes()[:100])
    err = _check("bench", argv, 0)
    assert str(chunk) in err and str(ref) in err
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == first["metrics"]
    assert {p.name: p.read_bytes() for p in (run_dir / "images").iterdir()} == images
    line = _check("bench", [*argv, "--seed", "3"], 2)
    assert "different" in line and json.loads((run_dir / "config.json").read_text())["seed"] == 0


def test_second_run_into_a_busy_run_directory_stops_with_one_line(tmp_path):
    run_dir = tmp_path / "runs" / "smoke-tiny"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom bench.locking import lock_directory\n"
         f"with lock_directory({str(run_dir)!r}, 'bench run'):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        line = _check("bench", [*RUN, "--out", str(tmp_path / "runs")], 2)
        assert f"process {holder.pid}" in line and time.perf_counter() - start < 30
    finally:
        holder.kill()
        holder.wait()


def test_replaced_weights_under_the_same_path_are_a_different_run(tmp_path, one_thread):
    """The run's identity is the content of what it read: a student replaced under the same path is refused,
    not silently reported under the old model's numbers."""
    from bench.model_card import write_model_card
    from methods.components import build_tiny_components

    student = tmp_path / "student"
    build_tiny_components(seed=3).unet.save_pretrained(student, safe_serialization=True)
    write_model_card(student, base="tiny", base_seed=3)
    argv = ["run", "--method", "sbv2", "--method-args", f"weights={student}", "--suite", "smoke", "--limit", "2",
            "--metrics", "none", "--device", "cpu", "--out", str(tmp_path / "runs")]
    _check("bench", argv, 0)
    run_dir = tmp_path / "runs" / "smoke-sbv2"
    assert json.loads((run_dir / "config.json").read_text())["inputs"]["files"][str(student.resolve())]["files"] == 3
    _check("bench", argv, 0)  # unchanged: resumes
    before = json.loads((run_dir / "config.json").read_text())
    build_tiny_components(seed=4).unet.save_pretrained(student, safe_serialization=True)
    line = _check("bench", argv, 2)
    assert "different method_args, inputs" in line  # the weights option counts by content
    assert json.loads((run_dir / "config.json").read_text()) == before, "the finished run is kept as it was"


def test_long_prompts_are_cut_counted_and_recorded(tmp_path, coco_root, one_thread):
    words = " ".join(f"word{i}" for i in range(100))  # over 77 CLIP tokens, under the 1,000-character cut
    (tmp_path / "prompts.txt").write_text(f"a red bus\n{words}\n{'x' * 5000}\n")
    argv = ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root), "--prompts",
            str(tmp_path / "prompts.txt"), "--metrics", "none", "--device", "cpu", "--out", str(tmp_path / "runs")]
    err = _check("bench", argv, 0)
    assert "1 prompt(s) longer than 1000 characters were cut" in err
    assert "2 of 3 prompts are longer than the text encoder's 77 tokens" in err
    config = json.loads((tmp_path / "runs" / "coco30k-tiny" / "config.json").read_text())
    assert config["prompts_cut"] == {"count": 1, "max_chars": 1000}
    assert config["prompts_truncated"] == {"count": 2, "token_limit": 77}
    rows = [json.loads(x) for x in (tmp_path / "runs" / "coco30k-tiny" / "manifest.jsonl").read_text().splitlines()]
    assert [len(r["prompt"]) for r in rows] == [9, len(words), 1000]


def test_too_few_samples_are_refused_before_generation_and_after_it_nothing_is_lost(tmp_path, make_coco_root,
                                                                                   one_thread):
    """Too few generated samples for a metric: one line naming the metric, its setting and the count, before any
    image is generated. Too few reference images (known only once they are read): one line after generation,
    and the generated images stay, so the next run resumes them."""
    out = tmp_path / "runs"
    line = _check("bench", [*RUN, "--limit", "3", "--metrics", "precision_recall", "--metric-args",
                            "precision_recall.weights=random", "--out", str(out)], 2)
    assert "'precision_recall' needs at least 4 generated samples (k=3), but this run has 3" in line
    assert not out.exists()
    _check("bench", [*RUN, "--limit", "3", "--metrics", "precision_recall", "--metric-args",
                     "precision_recall.weights=random,precision_recall.k=2", "--out", str(out)], 0)
    root = make_coco_root(tmp_path / "coco", n_images=3)
    coco = ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(root), "--limit", "5", "--device",
            "cpu", "--out", str(out), "--metric-args"]
    rc, _, err = _cli("bench", [*coco, "precision_recall.weights=random", "--metrics", "precision_recall"])
    assert rc == 2 and "Traceback" not in err  # after the progress bars, one line of error
    assert err.rstrip().endswith("'precision_recall' needs at least 4 reference samples (k=3), but this run has 3: "
                                 "give the suite a larger reference set (--data-root), or leave the metric out "
                                 "with --metrics") and err.count("error") == 1
    manifest = out / "coco30k-tiny" / "manifest.jsonl"
    assert len(manifest.read_text().splitlines()) == 5
    before = manifest.read_bytes()
    _check("bench", [*coco, "fid.weights=random", "--metrics", "fid"], 0)
    assert manifest.read_bytes() == before
    assert json.loads((out / "coco30k-tiny" / "results.json").read_text())["images"]["generated_this_run"] == 0


# -- identity by content: size and time games do not fool it, a rename does not change it ----------------------
def _student(path: Path, seed: int) -> Path:
    from bench.model_card import write_model_card
    from methods.components import build_tiny_components

    build_tiny_components(seed=seed).unet.save_pretrained(path, safe_serialization=True)
    write_model_card(path, base="tiny", base_seed=seed)
    return path


def _sbv2_run(weights: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--method", "sbv2", "--method-args", f"weights={weights}", "--suite", "smoke", "--limit", "2",
            "--metrics", "none", "--device", "cpu", "--out", str(out), *extra]


def test_identity_is_content_whatever_sizes_times_and_paths_say(tmp_path, one_thread):
    import shutil

    student = _student(tmp_path / "student", 3)
    other = _student(tmp_path / "other", 4)
    weights = student / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size == (other / weights.name).stat().st_size
    runs = tmp_path / "runs"
    _check("bench", _sbv2_run(student, runs), 0)
    run_dir = runs / "smoke-sbv2"
    before = (run_dir / "config.json").read_bytes()
    original = weights.read_bytes()
    stat = weights.stat()
    shutil.copyfile(other / weights.name, weights)  # cp, then touch -r: same path, size and mtime
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    line = _check("bench", _sbv2_run(student, runs), 2)
    assert "different method_args, inputs" in line and (run_dir / "config.json").read_bytes() == before
    weights.write_bytes(original)
    renamed = student.rename(tmp_path / "student-renamed")
    _check("bench", _sbv2_run(renamed, runs), 0)  # the same content under another name: the same run, resumed
    results = json.loads((run_dir / "results.json").read_text())
    assert results["images"]["generated_this_run"] == 0
    assert json.loads((run_dir / "config.json").read_text())["method_args"]["weights"] == str(renamed)
    # a run directory inside its own weights folder: its outputs are not its inputs, so it resumes
    _check("bench", _sbv2_run(renamed, renamed / "runs"), 0)
    _check("bench", _sbv2_run(renamed, renamed / "runs"), 0)
    inner = json.loads((renamed / "runs" / "smoke-sbv2" / "results.json").read_text())
    assert inner["images"]["generated_this_run"] == 0


def test_reference_images_replaced_with_the_same_names_and_sizes_are_new_references(tmp_path, toy, one_thread,
                                                                                      monkeypatch):
    import shutil

    from PIL import Image

    from bench.suites.smoke import REFERENCE_COUNT, REFERENCE_SIZE, draw_reference_image

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    refs = tmp_path / "cache" / "smoke-reference" / f"v1-{REFERENCE_COUNT}x{REFERENCE_SIZE}"
    refs.mkdir(parents=True)

    def write_refs(shift: int) -> None:  # uncompressed PNGs: every image has the same size in bytes
        for i in range(REFERENCE_COUNT):
            path = refs / f"{i:05d}.png"
            Image.fromarray(draw_reference_image(i + shift)).save(path, compress_level=0)
            os.utime(path, ns=(1, 1))

    write_refs(0)
    sizes = sorted(p.stat().st_size for p in refs.iterdir())
    argv = ["run", "--method", "tiny", "--suite", "smoke", "--limit", "4", "--metrics", "toy_fid", "--device", "cpu"]
    _check("bench", [*argv, "--out", str(tmp_path / "a")], 0)
    first = json.loads((tmp_path / "a" / "smoke-tiny" / "results.json").read_text())["metrics"]
    write_refs(1000)
    assert sorted(p.stat().st_size for p in refs.iterdir()) == sizes
    _check("bench", [*argv, "--out", str(tmp_path / "b")], 0)
    second = json.loads((tmp_path / "b" / "smoke-tiny" / "results.json").read_text())["metrics"]
    assert second != first
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "fresh-cache"))  # the same references, nothing cached
    fresh_refs = tmp_path / "fresh-cache" / refs.relative_to(tmp_path / "cache")
    shutil.copytree(refs, fresh_refs)
    _check("bench", [*argv, "--out", str(tmp_path / "c")], 0)
    assert json.loads((tmp_path / "c" / "smoke-tiny" / "results.json").read_text())["metrics"] == second


# -- no command deletes or rewrites what it did not create --------------------------------------------------------
def _sweep(a: Path, b: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep-merge", "--a", f"sbv2:weights={a}", "--b", f"sbv2:weights={b}", "--suite", "smoke", "--limit", "2",
            "--batch-size", "2", "--metrics", "toy_fid", "--components", "a", "--device", "cpu", "--out", str(out),
            *extra]


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_overwrite_replaces_only_an_output_of_the_same_kind_and_never_an_input(tmp_path, toy, one_thread):
    a, b = _student(tmp_path / "a", 3), _student(tmp_path / "b", 4)
    kept = {p: _tree(p) for p in (a, b)}
    # bench run into a student's folder, with or without --overwrite: refused, the student untouched
    for name in ("a", "b"):
        line = _check("bench", [*RUN, "--out", str(tmp_path), "--run-name", name, "--overwrite"], 2)
        assert "is not the config of a bench run" in line
    line = _check("bench", _sbv2_run(a, tmp_path, "--run-name", "a", "--overwrite"), 2)
    assert "an input of this run" in line
    photos = tmp_path / "photos"
    (photos / "images").mkdir(parents=True)
    (photos / "images" / "000000.png").write_bytes(b"my photo")
    for extra in ([], ["--overwrite"]):
        assert "holds no config.json" in _check("bench", [*RUN, "--out", str(tmp_path), "--run-name", "photos",
                                                          *extra], 2)
    assert _tree(photos) == {"images/000000.png": b"my photo"}
    # sweep-merge --overwrite: never a folder that is not a sweep, never its own input
    foreign = tmp_path / "sweeps" / "mine"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("keep me")
    line = _check("bench", _sweep(a, b, tmp_path / "sweeps", "--sweep-name", "mine", "--lambdas", "1",
                                  "--overwrite"), 2)
    assert "not a sweep" in line and (foreign / "notes.txt").read_text() == "keep me"
    line = _check("bench", _sweep(a, b, tmp_path, "--sweep-name", "a", "--lambdas", "1", "--overwrite"), 2)
    assert "not a sweep" in line
    # two lambdas that print alike get their own points; a different sweep holding an input is not replaced
    _check("bench", _sweep(a, b, tmp_path / "sweeps", "--sweep-name", "ab", "--lambdas", "0.1234567,0.12345671"), 0)
    record = json.loads((tmp_path / "sweeps" / "ab" / "sweep.json").read_text())
    dirs = [p["run_dir"] for p in record["points"]]
    assert len(set(dirs)) == 2 and all((tmp_path / "sweeps" / "ab" / d / "results.json").is_file() for d in dirs)
    inner = _student(tmp_path / "sweeps" / "ab" / "student", 5)
    line = _check("bench", _sweep(inner, b, tmp_path / "sweeps", "--sweep-name", "ab", "--lambdas", "1",
                                  "--overwrite"), 2)
    assert "an input of this sweep" in line and (inner / "config.json").is_file()
    assert {p: _tree(p) for p in (a, b)} == kept


def test_overwrite_never_deletes_a_running_sweep(tmp_path, toy, one_thread):
    a, b = _student(tmp_path / "a", 3), _student(tmp_path / "b", 4)
    sweep_dir = tmp_path / "sweeps" / "ab"
    _check("bench", _sweep(a, b, tmp_path / "sweeps", "--sweep-name", "ab", "--lambdas", "1"), 0)
    before = _tree(sweep_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom bench.locking import lock_directory\n"
         f"with lock_directory({str(sweep_dir)!r}, 'bench sweep-merge'):\n    print('held', flush=True)\n"
         "    time.sleep(60)"], stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        line = _check("bench", _sweep(a, b, tmp_path / "sweeps", "--sweep-name", "ab", "--lambdas", "0", "--seed",
                                      "1", "--overwrite"), 2)
        assert f"process {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    assert {k: v for k, v in _tree(sweep_dir).items() if k != ".lock"} == \
        {k: v for k, v in before.items() if k != ".lock"}
    _check("bench", _sweep(a, b, tmp_path / "sweeps", "--sweep-name", "ab", "--lambdas", "0", "--seed", "1",
                           "--overwrite"), 0)
    assert [p["lambda"] for p in json.loads((sweep_dir / "sweep.json").read_text())["points"]] == [0.0]
    assert not (sweep_dir / "lambda-1.00").exists(), "the replaced sweep's points are gone"


def test_interpolate_and_latency_never_replace_foreign_files(tmp_path, one_thread):
    out = tmp_path / "interp"
    out.mkdir()
    (out / "grid.png").write_bytes(b"my own picture")
    interp = ["interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--steps", "2", "--device",
              "cpu", "--out", str(out)]
    for extra in ([], ["--overwrite"]):
        assert "holds no interpolate.json" in _check("bench", [*interp, *extra], 2)
    assert (out / "grid.png").read_bytes() == b"my own picture"
    (out / "grid.png").unlink()
    _check("bench", interp, 0)
    assert "--overwrite" in _check("bench", interp, 2)
    _check("bench", [*interp, "--seeds", "1", "--overwrite"], 0)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["seed-1-step-0.png", "seed-1-step-1.png"]
    latency = ["latency", "--method", "tiny", "--device", "cpu", "--warmup", "0", "--iters", "1", "--repeats", "1"]
    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "numbers"}')
    for extra in ([], ["--overwrite"]):
        assert "not a `bench latency` record" in _check("bench", [*latency, "--out", str(mine), *extra], 2)
    assert mine.read_text() == '{"my": "numbers"}'
    record = tmp_path / "lat.json"
    _check("bench", [*latency, "--out", str(record)], 0)
    assert "--overwrite" in _check("bench", [*latency, "--out", str(record)], 2)
    _check("bench", [*latency, "--out", str(record), "--overwrite"], 0)


# -- every size a user types is bounded before any work -----------------------------------------------------------
def test_sizes_are_bounded_before_any_work(tmp_path):
    out = str(tmp_path / "out")
    start = time.perf_counter()
    cases = [
        (["sweep-merge", "--a", "sd-turbo:size=tiny", "--b", "sd-turbo:size=tiny", "--suite", "smoke", "--lambdas",
          "0:1:1e-9", "--out", out], "more than 1001"),
        (["sweep-merge", "--a", "sd-turbo:size=tiny", "--b", "sd-turbo:size=tiny", "--suite", "smoke", "--lambdas",
          ",".join(str(i / 2000) for i in range(1500)), "--out", out], "more than 1001"),
        (["interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--steps", "100000", "--out", out],
         "--steps"),
        (["interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--out", out, "--seeds",
          ",".join(map(str, range(100)))], "--seeds"),
        ([*RUN, "--limit", "8", "--batch-size", "100000", "--out", out], "--batch-size 8 or less"),
        ([*RUN, "--limit", "3", "--batch-size", "16", "--out", out], "would generate 16 images to keep 3"),
        (["sweep-merge", "--a", "sd-turbo:size=tiny", "--b", "sd-turbo:size=tiny", "--suite", "smoke", "--limit",
          "8", "--batch-size", "100000", "--out", out], "--batch-size 8 or less"),
    ]
    for argv, words in cases:
        assert words in _check("bench", argv, 2)
    assert time.perf_counter() - start < 60 and not Path(out).exists()
    _check("bench", [*RUN, "--limit", "2", "--batch-size", "8", "--out", out], 0)  # the default size always runs


# -- every reader of a file the project wrote tolerates damage ---------------------------------------------------
def test_damaged_files_the_project_wrote_give_one_line_or_a_warning(tmp_path, one_thread):
    runs = tmp_path / "runs"
    _check("bench", [*RUN, "--limit", "2", "--out", str(runs), "--run-name", "good"], 0)
    data = json.loads((runs / "good" / "results.json").read_text())
    data["metrics"] = {"fid": 12.5}
    (runs / "good" / "results.json").write_text(json.dumps(data))
    for name, change in (("null-metric", {"metrics": {**data["metrics"], "fid": None}}),
                         ("text-metric", {"metrics": {**data["metrics"], "fid": "12.3"}}),
                         ("future", {"schema": "sbv2-bench/results/v2"}),
                         ("list-timing", {"timing_s": [1, 2]})):
        (runs / name).mkdir()
        (runs / name / "results.json").write_text(json.dumps({**data, **change}))
    rc, stdout, err = _cli("bench", ["report", "--runs", str(runs), "--out", str(tmp_path / "report")])
    assert rc == 0 and "Traceback" not in err, err
    warnings = [ln for ln in err.splitlines() if "warning: skipped" in ln]
    assert len(warnings) == 4 and any("newer sbv2-bench" in w for w in warnings), err
    assert any("fid is null, not a number" in w for w in warnings) and (tmp_path / "report").is_dir()
    from bench.errors import BenchError
    from bench.results import load

    with pytest.raises(BenchError, match="upgrade"):
        load(runs / "future")
    # a weights folder whose config.json has values of the wrong type
    student = _student(tmp_path / "student", 3)
    config = json.loads((student / "config.json").read_text())
    (student / "config.json").write_text(json.dumps({**config, "in_channels": None}))
    assert "config.json is malformed" in _check("bench", _sbv2_run(student, tmp_path / "r"), 2)
    (student / "config.json").write_text(json.dumps(config))
    for card, words in (({"base": 5}, "'base' is 5"), ({"base": "tiny", "base_seed": "x"}, "'base_seed' is \"x\"")):
        (student / "bench_model.json").write_text(json.dumps(card))
        assert words in _check("bench", _sbv2_run(student, tmp_path / "r"), 2)
    # manifest rows of the wrong shape are skipped like torn lines: their samples are generated again
    run = [*RUN, "--limit", "3", "--out", str(tmp_path / "runs2")]
    _check("bench", run, 0)
    manifest = tmp_path / "runs2" / "smoke-tiny" / "manifest.jsonl"
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    damaged = [{**rows[0], "index": "abc"}, {**rows[1], "path": 5}, rows[2], [1, 2], {"index": True}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in damaged))
    _check("bench", run, 0)
    assert [json.loads(x) for x in manifest.read_text().splitlines()] == rows
    assert json.loads((manifest.parent / "results.json").read_text())["images"]["generated_this_run"] == 2


def test_resuming_from_a_damaged_checkpoint_is_one_line(tmp_path, one_thread):
    out = tmp_path / "train"
    argv = ["distill", "--preset", "tiny", "--output-dir", str(out), "--max-steps", "1", "--set",
            "progress_bar=false", "checkpoint_every=1", "student_mode=full", "clip_loss=false", "ema=false",
            "sample_every=0"]
    _check("training", argv, 0)
    ckpt = out / "checkpoint-1"
    files = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    damage = [("student.safetensors", files["student.safetensors"][:1000]), ("student.safetensors", b"garbage"),
              ("optimizer_student.safetensors", b"\x08" + b"\0" * 7 + b"{}"), ("optimizers.json", b'{"a": 1}'),
              ("schedulers.json", b"[]"), ("training_state.json", b'{"step": "x"}')]
    for name, data in damage:
        (ckpt / name).write_bytes(data)
        line = _check("training", [*argv, "--resume", "latest"], 2)
        assert "is damaged" in line or "no readable" in line, line
        (ckpt / name).write_bytes(files[name])
    _check("training", [*argv, "--resume", "latest"], 0)
    (ckpt / "student.safetensors").write_bytes(b"garbage")
    line = _check("training", ["export", "--run", str(out), "--checkpoint", "1", "--output-dir",
                               str(tmp_path / "export")], 2)
    assert "is damaged" in line and str(ckpt) in line and not (tmp_path / "export").exists()


# -- smaller: umask, pipes, full disks, line breaks inside a prompt -----------------------------------------------
def test_journals_follow_the_umask(tmp_path):
    from bench.run_dir import Journal

    for mask in (0o077, 0o002):
        old = os.umask(mask)
        try:
            journal = Journal(tmp_path / f"{mask:o}" / "rank-0.jsonl")
            journal.append([{"index": 0}])
        finally:
            os.umask(old)
        assert journal.path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_closed_pipe_ends_quietly(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m bench list | head -1", shell=True, capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, executable="/bin/bash")
    assert proc.stdout == "methods:\n" and proc.stderr == "", proc.stderr
    rc = subprocess.run(f"{sys.executable} -m bench list --json | head -c 1; exit ${{PIPESTATUS[0]}}", shell=True,
                        capture_output=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                        executable="/bin/bash")
    assert rc.returncode == 0 and rc.stderr == b""


def test_a_full_disk_is_one_line_naming_what_was_written(tmp_path, monkeypatch):
    import errno

    from bench.errors import run_guarded
    from bench.run_dir import atomic_write_json

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    err = io.StringIO()
    with redirect_stderr(err):
        assert run_guarded("bench", lambda: atomic_write_json(tmp_path / "results.json", {}), "") == 2
        assert run_guarded("bench", lambda: full(), "") == 2
    first, second = err.getvalue().splitlines()
    assert f"disk full while writing {tmp_path / 'results.json'}" in first and "disk full" in second
    assert list(tmp_path.iterdir()) == [], "no temporary file is left behind"


def test_line_breaks_inside_a_prompt_do_not_split_it(tmp_path, coco_root, one_thread):
    (tmp_path / "prompts.txt").write_text("a red\u2028bus\r\na\x0cdog\u0085barking\rlast\n", encoding="utf-8")
    argv = ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root), "--prompts",
            str(tmp_path / "prompts.txt"), "--metrics", "none", "--device", "cpu", "--out", str(tmp_path / "runs")]
    _check("bench", argv, 0)
    run_dir = tmp_path / "runs" / "coco30k-tiny"
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text(encoding="utf-8").split("\n") if x]
    assert [r["prompt"] for r in rows] == ["a red\u2028bus", "a\x0cdog\u0085barking", "last"]
    _check("bench", argv, 0)
    assert json.loads((run_dir / "results.json").read_text())["images"]["generated_this_run"] == 0


def test_a_refused_run_leaves_no_empty_run_directory(tmp_path):
    """The run directory the lock created is removed again when the run is refused before writing anything."""
    from helpers import run_cli

    out = tmp_path / "runs"
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={tmp_path / 'studnet'}", "--suite",
                         "smoke", "--limit", "2", "--metrics", "none", "--out", str(out), "--device", "cpu")
    assert rc == 2 and "no such directory" in err, err
    assert not (out / "smoke-sbv2").exists()
    (out / "kept").mkdir(parents=True)
    (out / "kept" / "notes.txt").write_text("mine")  # an existing folder is never removed
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={tmp_path / 'studnet'}", "--suite",
                         "smoke", "--limit", "2", "--metrics", "none", "--out", str(out), "--run-name", "kept")
    assert rc == 2 and (out / "kept" / "notes.txt").read_text() == "mine"


def test_a_refusal_for_another_run_also_names_a_mistyped_weights_path(tmp_path, one_thread):
    """--run-name holds another run and weights= names nothing (its folder exists): the one-line refusal names
    both, so one correction fixes the command; a hub-like id (no such parent folder here) is not flagged."""
    from helpers import run_cli

    out = tmp_path / "runs"
    common = ["--suite", "smoke", "--limit", "4", "--metrics", "none", "--out", str(out), "--run-name", "r",
              "--device", "cpu"]
    assert run_cli("run", "--method", "sbv2", "--method-args", "weights=random,size=tiny", *common)[0] == 0
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={tmp_path / 'studnet'},size=tiny",
                         *common)
    assert rc == 2 and err.count("\n") == 1, err
    assert "holds a run with a different" in err and f"weights={tmp_path / 'studnet'} names nothing here" in err
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", "weights=acme/student,size=tiny", *common)
    assert rc == 2 and "holds a run with a different" in err and "names nothing" not in err, err
