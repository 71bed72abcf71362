"""``python -m bench sweep-merge`` on two tiny students trained by the tiny preset: the ends of the sweep equal the
sources, the middle equals `training merge`, kill -9 then re-run gives the same sweep, bad input is one line."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
from conftest import use_toy
from helpers import run_cli
from safetensors.torch import load_file

from bench.merge_sweep_record import load_sweep
from bench.testing import torch_threads

pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHTS = "diffusion_pytorch_model.safetensors"
COMMON = ["--suite", "smoke", "--limit", "2", "--batch-size", "1", "--metrics", "toy_fid", "--device", "cpu"]


@pytest.fixture(scope="session")
def students(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two students of the tiny preset, two steps each (the first VSD step has a zero gradient): A fully
    fine-tuned, B a LoRA student (fused export and its ``lora/`` adapter)."""
    from training.cli import main

    root = tmp_path_factory.mktemp("students")
    with torch_threads(1):
        for name, settings in (("a", ["student_mode=full", "ema=false", "student_lr=1e-2"]),
                               ("b", ["export_ema=false", "student_lr=5e-2"])):
            assert main(["distill", "--preset", "tiny", "--max-steps", "2", "--output-dir", str(root / name), "--set",
                         "progress_bar=false", "clip_loss=false", "sample_every=0", "checkpoint_every=0",
                         *settings]) == 0
    return {"a": root / "a", "b": root / "b"}


def sweep_argv(students: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["sweep-merge", "--a", f"sbv2:weights={students['a']}", "--b", f"sbv2:weights={students['b'] / 'lora'}",
            "--lambdas", "0:1:0.5", "--out", str(out), "--sweep-name", "ab", *COMMON, *extra]


def images(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "images").glob("*.png"))}


def untimed(record: dict) -> dict:
    return {**record, "points": [{k: v for k, v in p.items() if k != "seconds"} for p in record["points"]]}


@pytest.fixture(scope="module")
def sweep(students, tmp_path_factory) -> dict[str, Path]:
    """The uninterrupted 3-point sweep (B given as its LoRA adapter), with the merged model saved at 0.5."""
    from conftest import ToyFID

    ToyFID.higher_is_better = {"toy_fid": False, "toy_mean": True}  # declared directions, as real metrics have
    use_toy()
    out = tmp_path_factory.mktemp("sweeps")
    with torch_threads(1):  # as in the tests that compare images with it
        rc, stdout, err = run_cli(*sweep_argv(students, out), "--save-merged", "0.5", "--merged-dir",
                                  str(out / "merged"))
    assert rc == 0, err
    assert "lambda = 1 is A" in stdout and "best by toy_fid" in stdout
    yield {"dir": out / "ab", "merged": out / "merged", "out": out}
    del ToyFID.higher_is_better


def bench_run(out: Path, weights: Path) -> Path:
    use_toy()
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={weights}", "--out", str(out),
                         "--run-name", "r", *COMMON)
    assert rc == 0, err
    return out / "r"


def test_ends_equal_the_sources_and_the_middle_equals_training_merge(sweep, students, tmp_path):
    from training.cli import main as training_main

    d = sweep["dir"]
    assert images(d / "lambda-1.00") == images(bench_run(tmp_path / "a", students["a"]))
    assert images(d / "lambda-0.00") == images(bench_run(tmp_path / "b", students["b"]))  # fused export == lora/
    assert training_main(["merge", "--a", str(students["a"]), "--b", str(students["b"] / "lora"), "--lambda", "0.5",
                          "--output-dir", str(tmp_path / "m")]) == 0
    assert images(d / "lambda-0.50") == images(bench_run(tmp_path / "m-run", tmp_path / "m"))
    assert images(d / "lambda-0.50") != images(d / "lambda-1.00") != images(d / "lambda-0.00")
    saved, expected = load_file(str(sweep["merged"] / WEIGHTS)), load_file(str(tmp_path / "m" / WEIGHTS))
    assert set(saved) == set(expected) and all(torch.equal(saved[k], expected[k]) for k in expected)
    # each point's config names both sources, their fingerprints and lambda
    config = json.loads((d / "lambda-0.50" / "config.json").read_text())
    assert config["method"] == "merge" and config["method_args"]["lambda"] == 0.5
    record = load_sweep(d)
    assert config["method_args"]["a_fingerprint"] == record.a["fingerprint"] != record.b["fingerprint"]
    assert record.components == "checked equal" and record.lambdas() == [0.0, 0.5, 1.0]
    assert record.directions == {"toy_fid": False, "toy_mean": True}


def test_sweep_json_csv_and_plotted_curves_agree(sweep):
    from bench.plots.merge_curves import plot_merge_curves

    d = sweep["dir"]
    record = load_sweep(d)
    assert all(p.metrics for p in record.points) and (d / "curves.png").is_file() and (d / "curves.pdf").is_file()
    best = min(record.points, key=lambda p: p.metrics["toy_fid"])
    assert record.best == {"by": "toy_fid", "lambda": best.lam, "value": best.metrics["toy_fid"]}
    rows = list(csv.DictReader((d / "sweep.csv").open()))
    assert [float(r["lambda"]) for r in rows] == record.lambdas()
    assert [float(r["toy_fid"]) for r in rows] == record.curve("toy_fid")[1]
    assert [r["run_dir"] for r in rows] == [p.run_dir for p in record.points]
    plotted = plot_merge_curves([record, record], d.parent / "compare")
    assert sorted(plotted["panels"]) == sorted({k for p in record.points for k in p.metrics})
    for key, lines in plotted["panels"].items():
        assert len(lines) == 2
        for line in lines.values():
            assert (line["x"], line["y"]) == record.curve(key)
    assert all(Path(f).stat().st_size > 0 for f in plotted["files"])
    assert "lower is better" in plotted["titles"]["toy_fid"] and "higher is better" in plotted["titles"]["toy_mean"]
    assert plotted["best"] == {"ab (1)": best.lam, "ab (2)": best.lam}


def test_kill_in_the_second_point_then_rerun_gives_the_same_sweep(sweep, students, tmp_path):
    from test_engine import _forkserver, run_child

    argv = sweep_argv(students, tmp_path)
    code = run_child(_forkserver(), argv, env={"BENCH_CRASH_AT": "journal:3"}, timeout=300)
    assert code == -signal.SIGKILL
    d = tmp_path / "ab"
    assert (d / "lambda-0.00" / "results.json").is_file() and not (d / "lambda-0.50" / "results.json").exists()
    assert images(d / "lambda-0.50") and not (d / "lambda-1.00").exists()  # killed inside the second point
    kept = images(d / "lambda-0.00")
    use_toy()
    rc, _, err = run_cli(*argv)
    assert rc == 0, err
    assert untimed(json.loads((d / "sweep.json").read_text())) == untimed(
        json.loads((sweep["dir"] / "sweep.json").read_text()))
    assert images(d / "lambda-0.00") == kept
    for point in ("lambda-0.00", "lambda-0.50", "lambda-1.00"):
        assert images(d / point) == images(sweep["dir"] / point)


def one_line_error(*argv: str) -> str:
    use_toy()
    rc, _, err = run_cli(*argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
    return err


def test_bad_input_is_one_line_and_loses_nothing(sweep, students, tmp_path):
    from methods.components import TINY_UNET_CONFIG
    from methods.sbv2 import write_model_card

    a, b, out = f"sbv2:weights={students['a']}", f"sbv2:weights={students['b']}", str(sweep["out"])
    before = {p: p.read_bytes() for p in sweep["dir"].rglob("*") if p.is_file()}
    base = ["sweep-merge", "--suite", "smoke", "--limit", "2", "--metrics", "toy_fid", "--device", "cpu"]
    err = one_line_error(*base, "--a", f"sbv2:weights={tmp_path / 'none'}", "--b", b, "--out", str(tmp_path))
    assert "--a" in err and "no such directory" in err
    for grid in ("1:0:0.1", "0,nan", "nan:1:0.5", ""):
        assert "--lambdas" in one_line_error(*base, "--a", a, "--b", b, "--lambdas", grid or ",")
    # another architecture
    from diffusers import UNet2DConditionModel

    other = tmp_path / "other"
    UNet2DConditionModel(**{**TINY_UNET_CONFIG, "layers_per_block": 2}).save_pretrained(str(other))
    write_model_card(other, base="tiny")
    assert "different architectures" in one_line_error(*base, "--a", a, "--b", f"sbv2:weights={other}",
                                                       "--out", str(tmp_path))
    # other components, and a method that cannot be merged
    err = one_line_error(*base, "--a", "sbv2:size=tiny", "--b", "sbv2:size=tiny,weights_seed=1", "--out",
                         str(tmp_path))
    assert "different text_encoder" in err and "--components" in err
    assert "cannot be merged" in one_line_error(*base, "--a", "tiny", "--b", a, "--out", str(tmp_path))
    # the sweep directory holds another sweep (A and B swapped)
    err = one_line_error(*base, "--a", b, "--b", a, "--lambdas", "0:1:0.5", "--out", out, "--sweep-name", "ab")
    assert "holds a different sweep" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in sweep["dir"].rglob("*") if p.is_file()} == before


def test_lambda_grids_and_point_names():
    from bench.merge_sweep import parse_lambdas, point_name

    assert parse_lambdas(None) == [round(i / 10, 10) for i in range(11)]
    assert parse_lambdas("0:1:0.1")[-1] == 1.0 and len(parse_lambdas("0:1:0.1")) == 11
    assert parse_lambdas("0.3,0,0.3") == [0.0, 0.3]
    assert parse_lambdas("0:0.3:0.1") == [0.0, 0.1, 0.2, 0.3]
    assert [point_name(v) for v in (0.5, 0.125, 1.0)] == ["lambda-0.50", "lambda-0.125", "lambda-1.00"]


def test_components_choice_and_merged_components(one_thread):
    from bench.errors import BenchError
    from bench.merged_generator import MergedGenerator, load_source, resolve_components
    from bench.state_interpolation import interpolate_state_dicts

    a, b = load_source("--a", "sbv2:size=tiny", "cpu"), load_source("--b", "sbv2:size=tiny,weights_seed=1", "cpu")
    with pytest.raises(BenchError, match="different text_encoder, vae"):
        resolve_components(a, b, "check")
    assert [resolve_components(a, b, c) for c in ("a", "b", "merge")] == ["from a", "from b", "merged"]
    original_te = {k: v.clone() for k, v in a.generator.text_encoder.state_dict().items()}
    for lam in (0.5, 1.0):  # the second point must not start from the first point's merged networks
        merged = MergedGenerator(a, b, lam, "merged")
        merged.load(torch.device("cpu"), torch.float32)
        expected_te = interpolate_state_dicts(original_te, b.components["text_encoder"], lam)
        live = a.generator.text_encoder.state_dict()
        assert all(torch.equal(live[k], expected_te[k]) for k in expected_te)
        expected_unet = interpolate_state_dicts(a.state, b.state, lam)
        assert all(torch.equal(a.generator.unet.state_dict()[k], v) for k, v in expected_unet.items())
    from_b = MergedGenerator(a, b, 0.25, "from b")
    from_b.load(torch.device("cpu"), torch.float32)
    assert from_b.host is b.generator and from_b.describe()["merge"]["host"] == "b"
    assert from_b.args["b_fingerprint"] == b.fingerprint and from_b.args["lambda"] == 0.25


def test_a_renamed_source_with_the_same_weights_resumes_the_sweep(sweep, students, tmp_path):
    """Identity by content: the sweep and its points are found again under a renamed (identical) student."""
    import shutil

    shutil.copytree(sweep["dir"], tmp_path / "ab")
    renamed = {"a": tmp_path / "a-renamed", "b": students["b"]}
    shutil.copytree(students["a"], renamed["a"])
    use_toy()
    rc, _, err = run_cli(*sweep_argv(renamed, tmp_path))
    assert rc == 0, err
    record = json.loads((tmp_path / "ab" / "sweep.json").read_text())
    assert record["a"]["source"].endswith("a-renamed")  # the record names where the weights are now
    for point in ("lambda-0.00", "lambda-0.50", "lambda-1.00"):
        results = json.loads((tmp_path / "ab" / point / "results.json").read_text())
        assert results["images"]["generated_this_run"] == 0, point
        assert images(tmp_path / "ab" / point) == images(sweep["dir"] / point)


def test_merge_contract_of_the_generator_classes(tmp_path):
    """The registry's classes decide how a source is merged: sbv2 builds a LoRA adapter on the export holding it
    (one line when nothing holds it); a method without student directories keeps its args and cannot write a
    merged model (one line, nothing written)."""
    from bench.errors import BenchError
    from bench.merged_generator import method_class

    lora = tmp_path / "export" / "lora"
    lora.mkdir(parents=True)
    (lora / "adapter_config.json").write_text("{}")
    sbv2, tiny = method_class("sbv2"), method_class("tiny")
    with pytest.raises(BenchError, match="is a LoRA adapter outside an export directory"):
        sbv2.merge_adapter({"weights": str(lora)})
    (lora.parent / "config.json").write_text("{}")
    assert sbv2.merge_adapter({"weights": str(lora), "size": "tiny"}) == (
        {"weights": str(lora.parent), "size": "tiny"}, lora)
    assert sbv2.merge_adapter({"weights": str(lora.parent)}) is None  # an export is built as given
    assert tiny.merge_adapter({"weights": str(lora)}) is None
    with pytest.raises(BenchError, match="method 'tiny' cannot write a merged model"):
        tiny.write_merged(str(lora.parent), str(lora.parent), 0.5, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_save_merged_is_refused_before_the_sweep_for_methods_that_write_no_merged_model(students, tmp_path):
    """--save-merged needs two weights=DIR of one method whose class writes merged models: a method without the
    writer, or A and B of two writer methods, is one line before anything is generated (no sweep folder)."""
    from bench import hookimpl
    from bench.testing import registered
    from methods.sbv2 import SBv2Generator

    use_toy()
    argv = sweep_argv(students, tmp_path, "--save-merged", "0.5")
    tiny_a = [("tiny:size=tiny" if a == f"sbv2:weights={students['a']}" else a) for a in argv]
    rc, _, err = run_cli(*tiny_a)
    assert rc == 2 and err.count("\n") == 1
    assert "--save-merged needs model directories of a method that writes merged models" in err and "--a" in err

    class Copy(SBv2Generator):
        pass

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register("sbv2-copy", Copy, description="sbv2 under another name")

    with registered(Plugin()):
        other_b = [a.replace("sbv2:weights=", "sbv2-copy:weights=") if "lora" in a else a for a in argv]
        rc, _, err = run_cli(*other_b)
    assert rc == 2 and err.count("\n") == 1 and "A and B of one method" in err
    assert not (tmp_path / "ab").exists()
