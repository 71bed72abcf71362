"""The paths a user with real model ids takes, end to end, on the offline toy hub (toy-size models saved under
the real hub ids in a hub cache: the loading code reads the real layouts and cannot tell).

Train from the SD-Turbo id (schemes A and B, SwiftBrush), export, evaluate with ``--method sbv2``, merge, sweep,
report; every built-in method by its id; ``bench reproduce`` executed; a student whose base is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli

from bench.hub_cache import repo_folder
from bench.toy_hub import SD_TURBO, build, toy_repos

pytestmark = pytest.mark.usefixtures("one_thread_module")

#: Settings that make the paper's presets run on a CPU in seconds (they change nothing the card's recipe holds).
CPU = ["mixed_precision=no", "batch_size=1", "gradient_checkpointing=false", "prompts=builtin:demo",
       "lora_teacher_rank=4", "lora_teacher_alpha=8", "num_samples=1"]
RUN = ["--suite", "smoke", "--limit", "2", "--device", "cpu"]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_toy_hub_has_the_real_cache_layout(tmp_path):
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    first = build(tmp_path / "a", [SD_TURBO])[SD_TURBO]
    again = build(tmp_path / "b", [SD_TURBO])[SD_TURBO]
    assert first.name == again.name  # deterministic: the same files give the same commit
    root = repo_folder(tmp_path / "a", SD_TURBO)
    assert (root / "refs" / "main").read_text() == first.name
    weights = first / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (root / "blobs").resolve()
    found = snapshot_download(SD_TURBO, cache_dir=tmp_path / "a", local_files_only=True,
                              allow_patterns=["unet/*", "tokenizer/*"])
    assert Path(found) == first
    assert try_to_load_from_cache(SD_TURBO, "scheduler/scheduler_config.json", cache_dir=tmp_path / "a")
    scheduler = json.loads((first / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "EulerDiscreteScheduler" and scheduler["timestep_spacing"] == "trailing"


def test_toy_hub_tokenizer_is_the_clip_vocabulary(toy_hub_cache):
    """transformers' CLIPTokenizer on the written files gives open_clip's token ids."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    snap = next((repo_folder(toy_hub_cache, SD_TURBO) / "snapshots").iterdir())
    hf = CLIPTokenizer.from_pretrained(snap, subfolder="tokenizer")
    text = "A photo of a cat reading a book, 4k"
    assert hf(text).input_ids == [49406, *SimpleTokenizer().encode(text), 49407]
    assert hf.pad_token_id == 0  # SD 2.x pads with "!"


@pytest.mark.parametrize("method,args", [
    ("sd-turbo", ""), ("swiftbrush", ""), ("instaflow", ""), ("sd21", "steps=2"), ("sd-turbo", "vae=tiny"),
    ("diffusers", "model=stable-diffusion-v1-5/stable-diffusion-v1-5,steps=2"),
])
def test_each_method_loads_its_real_id(method, args, on_toy_hub, tmp_path):
    argv = ["run", "--method", method, *RUN, "--metrics", "none", "--out", str(tmp_path), "--run-name", "r"]
    rc, _, err = run_cli(*argv, *(["--method-args", args] if args else []))
    assert rc == 0, err
    results = _results(tmp_path / "r")
    generator = results["config"]["generator"]
    assert results["weights"] == "random" and not results["comparable"]  # toy weights are never comparable
    ids = {s.get("id") for s in generator["sources"].values() if isinstance(s, dict)}
    assert ids <= set(toy_repos()) | {None} and ids & set(toy_repos())
    assert all(s.get("toy_hub") for s in generator["sources"].values() if isinstance(s, dict) and s.get("id"))


# -- training from the hub teacher -> export -> bench run -> merge -> sweep -> report ---------------------------
@pytest.fixture(scope="module")
def students(toy_hub_cache, tmp_path_factory):
    """Scheme A and scheme B students of the SD-Turbo id (the sbv2-a / sbv2-b presets), and their 0.5 merge."""
    import huggingface_hub.constants

    from training.cli import main as training

    mp = pytest.MonkeyPatch()
    mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(toy_hub_cache))
    models = tmp_path_factory.mktemp("models")
    try:
        assert training(["distill", "--preset", "sbv2-a", "--output-dir", str(models / "model-a"), "--max-steps", "2",
                         "--set", *CPU]) == 0
        assert training(["distill", "--preset", "sbv2-b", "--output-dir", str(models / "model-b"), "--max-steps", "2",
                         "--set", *CPU, "student_lora_rank=4", "student_lora_alpha=8", "clip_model=tiny",
                         "clip_pretrained=random"]) == 0
        assert training(["merge", "--a", str(models / "model-a"), "--b", str(models / "model-b"), "--lambda", "0.5",
                         "--output-dir", str(models / "sbv2")]) == 0
    finally:
        mp.undo()
    return models


def test_student_of_the_hub_teacher_evaluates(students, on_toy_hub, tmp_path):
    card = json.loads((students / "model-a" / "bench_model.json").read_text())
    assert card["base"] == SD_TURBO and card["base_seed"] is None  # what crashed `bench run --method sbv2`
    for name in ("model-a", "model-b", "sbv2"):
        rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={students / name}", *RUN,
                             "--metrics", "none", "--out", str(tmp_path), "--run-name", name)
        assert rc == 0, err
        assert _results(tmp_path / name)["config"]["generator"]["weights"] == "random"


def test_release_checkpoint_layout_takes_sd_turbo_from_the_hub(students, on_toy_hub, tmp_path):
    """The SBv2 release's layout (DIR/unet_ema/, no card): the base defaults to the SD-Turbo id."""
    release = tmp_path / "release"
    (release / "unet_ema").mkdir(parents=True)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copyfile(students / "model-a" / name, release / "unet_ema" / name)
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={release}", *RUN, "--metrics", "none",
                         "--out", str(tmp_path / "runs"), "--run-name", "release")
    assert rc == 0, err
    sources = _results(tmp_path / "runs" / "release")["config"]["generator"]["sources"]
    assert sources["base"] == SD_TURBO and sources["unet"]["subfolder"] == "unet_ema"
    assert sources["text_encoder"]["id"] == SD_TURBO and sources["text_encoder"]["toy_hub"]


def test_student_whose_base_is_missing_is_one_line(students, on_toy_hub, tmp_path):
    student = tmp_path / "student"
    shutil.copytree(students / "model-a", student)
    card = json.loads((student / "bench_model.json").read_text())
    (student / "bench_model.json").write_text(json.dumps({**card, "base": "stabilityai/not-in-the-cache"}))
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={student}", *RUN, "--metrics", "none",
                         "--out", str(tmp_path / "runs"))
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "stabilityai/not-in-the-cache" in err and "hf download" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.png"))


def test_sweep_and_report_on_hub_students(students, on_toy_hub, tmp_path, toy):
    """A sweep between the two hub students, then a report: the merged student lands in the SBv2 row by its recipe;
    a toy student in a folder named like the row does not."""
    from test_report import use_paper_toy

    use_paper_toy()
    rc, _, err = run_cli("sweep-merge", "--a", f"sbv2:weights={students / 'model-a'}",
                         "--b", f"sbv2:weights={students / 'model-b'}", "--lambdas", "0:1:0.5", *RUN,
                         "--metrics", "toy_fid", "--out", str(tmp_path / "sweep"))
    assert rc == 0, err
    sweep = json.loads(next((tmp_path / "sweep").rglob("sweep.json")).read_text())
    assert len(sweep["points"]) == 3
    runs = tmp_path / "runs"
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={students / 'sbv2'}", *RUN,
                         "--metrics", "paper_toy", "--out", str(runs), "--run-name", "my-merge")
    assert rc == 0, err
    toy_student = tmp_path / "elsewhere" / "sbv2"
    shutil.copytree(students / "model-a", toy_student)
    card = json.loads((toy_student / "bench_model.json").read_text())
    (toy_student / "bench_model.json").write_text(json.dumps({**card, "recipe": {**card["recipe"], "preset": "tiny"}}))
    rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={toy_student}", *RUN,
                         "--metrics", "paper_toy", "--out", str(runs), "--run-name", "smoke-sbv2")
    assert rc == 0, err
    rc, _, err = run_cli("report", "--runs", str(runs), "--out", str(tmp_path / "report"), "--tables", "table3")
    assert rc == 0, err
    assert (tmp_path / "report" / "table3.md").is_file()
    from bench.report.collect import collect
    from bench.report.data import paper
    from bench.report.match import match

    matches = match(paper(), collect([runs]))
    assert [Path(r.run_dir).name for r in matches.runs.get("sbv2", [])] == ["my-merge"]
    assert "smoke-sbv2" in [Path(r.run_dir).name for r in matches.unmatched]


# -- bench reproduce, executed ------------------------------------------------------------------------------
def test_reproduce_table1_runs_and_reports(on_toy_hub, coco_root, tmp_path):
    """Table 1's plan executed with --limit on the toy hub: every public row gets a run the report reads into
    its row, not comparable only for the reasons that hold (random weights, subset)."""
    rc, _, err = run_cli("reproduce", "table1", "--limit", "2", "--device", "cpu", "--data-root", str(coco_root),
                         "--metrics", "fid", "--metric-args", "fid.weights=random", "--out", str(tmp_path / "runs"),
                         "--report", str(tmp_path / "report"))
    assert rc == 0, err
    from bench.report.collect import collect
    from bench.report.data import paper
    from bench.report.match import match, measure

    the_paper = paper()
    table = the_paper.table("table1")
    matches = match(the_paper, collect([tmp_path / "runs"]))
    fid = next(c for c in table.columns if c.measure == "fid")
    for model in ("sd21-cfg2", "sd21-cfg4_5", "sd21-cfg7_5", "sd-turbo", "swiftbrush"):
        cell = measure(the_paper, table, fid, model, matches)
        assert cell is not None and not cell.comparable, model
        assert not any("profile" in r or "HPS" in r for r in cell.reasons), cell.reasons
    assert (tmp_path / "report" / "table1.md").is_file()


def test_reproduce_table4_plans_hps_v2_0(capsys):
    from bench.cli import main

    assert main(["reproduce", "table4", "--dry-run"]) == 0
    runs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python -m bench run")]
    assert runs and all("--suite-args profile=sbv2-paper" in line for line in runs)
    from bench.profiles import get_profile

    assert get_profile("sbv2-paper").metrics["hps"]["version"] == "v2.0"


def test_table4_run_under_its_profile_is_not_flagged_for_the_hps_version():
    from bench.report.data import paper
    from bench.report.match import run_reasons
    from bench.results import Results

    the_paper = paper()
    protocol = the_paper.protocol_of(the_paper.table("table4"))
    config = {"protocol": {"profile": {"name": "sbv2-paper"}}, "metrics": {"hps": {"version": "v2.0"}}}
    run = Results.from_dict({"method": "sd-turbo", "suite": "hpsv2", "metrics": {}, "comparable": True,
                             "config": config})
    assert run_reasons(run, protocol) == []
    release = {"protocol": {"profile": {"name": "sbv2-release"}}, "metrics": {"hps": {"version": "v2.1"}}}
    reasons = run_reasons(Results.from_dict({"method": "sd-turbo", "suite": "hpsv2", "metrics": {},
                                             "comparable": True, "config": release}), protocol)
    assert any("v2.1" in r for r in reasons) and any("profile" in r for r in reasons)


# -- bench reproduce of the tables with trained rows: the plan's own training commands, then the plan -----------
#: What a CPU adds to the plan's training commands (none of it is part of a student's recipe).
CPU_TRAINING = [*CPU, "student_lora_rank=4", "student_lora_alpha=8", "clip_model=tiny", "clip_pretrained=random"]
TRAINED_TABLES = ("table3", "table4", "table7")


def _write_training_data(root: Path) -> dict[str, Path]:
    """Prompt files in the formats of JourneyDB (JSONL) and LAION (CSV) exports, and image-text pairs."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    jdb, laion, pairs = root / "journeydb.jsonl", root / "laion.csv", root / "pairs.jsonl"
    jdb.write_text("".join(json.dumps({"prompt": f"a castle in the clouds, style {i}"}) + "\n" for i in range(4)))
    laion.write_text("caption,url\n" + "".join(f"a photo of a dog number {i},http://x/{i}.jpg\n" for i in range(4)))
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"pair-{i}.png")
        lines.append(json.dumps({"image": f"pair-{i}.png", "caption": f"a red square number {i}"}))
    pairs.write_text("\n".join(lines) + "\n")
    return {"--jdb": jdb, "--laion": laion, "--pairs": pairs}


@pytest.fixture(scope="module")
def paper_models(toy_hub_cache, tmp_path_factory):
    """Every model Tables 3, 4 and 7 train, made by running the training commands `reproduce --dry-run` prints
    (with CPU settings appended) on the toy hub."""
    import shlex

    import huggingface_hub.constants

    from training.cli import main as training

    root = tmp_path_factory.mktemp("paper")
    data = _write_training_data(root / "data")
    models = root / "models"
    places = ["--models", str(models), *(x for k, v in data.items() for x in (k, str(v)))]
    mp = pytest.MonkeyPatch()
    mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(toy_hub_cache))
    done: set[str] = set()
    try:
        for table in TRAINED_TABLES:
            rc, out, err = run_cli("reproduce", table, "--dry-run", *places)
            assert rc == 0, err
            for line in out.splitlines():
                if not line.startswith("python -m training ") or line in done:
                    continue
                done.add(line)
                argv = shlex.split(line)[3:]
                extra = ["--max-steps", "2", "--set", *CPU_TRAINING] if argv[0] == "distill" else []
                assert training([*argv, *extra]) == 0, line
    finally:
        mp.undo()
    return {"root": root, "places": places}


@pytest.mark.parametrize("table", TRAINED_TABLES)
def test_reproduce_tables_with_trained_rows(table, paper_models, on_toy_hub, coco_root, hpsv2_prompts, tmp_path):
    """The plan executed with --limit: every runnable row, public or trained here, gets its run, and the report
    reads each into its own row, not comparable only for the reasons that hold."""
    from bench.report.collect import collect
    from bench.report.data import paper
    from bench.report.match import match, measure

    if table == "table4":
        data = ["--prompts", str(hpsv2_prompts), "--metrics", "hps",
                "--metric-args", "hps.weights=random,hps.model=ViT-B-32"]
    else:
        data = ["--data-root", str(coco_root), "--metrics", "fid", "--metric-args", "fid.weights=random"]
    runs = tmp_path / "runs"
    rc, _, err = run_cli("reproduce", table, "--limit", "4", "--device", "cpu", *paper_models["places"], *data,
                         "--out", str(runs), "--report", str(tmp_path / "report"))
    assert rc == 0, err
    the_paper = paper()
    spec = the_paper.table(table)
    matches = match(the_paper, collect([runs]))
    column = next(c for c in spec.columns if c.measure in ("fid", "hps/anime"))
    runnable = [r.model for r in spec.rows if the_paper.models.get(r.model) and the_paper.models[r.model].method]
    assert runnable
    for model in runnable:
        assert [Path(r.run_dir).name for r in matches.runs.get(model, [])] == [f"{spec_suite(table)}-{model}"]
        cell = measure(the_paper, spec, column, model, matches)
        assert cell is not None and not cell.comparable, model
        assert not any("profile" in r or "HPS v" in r for r in cell.reasons), (model, cell.reasons)
    assert (tmp_path / "report" / f"{table}.md").is_file()


def spec_suite(table: str) -> str:
    return "hpsv2" if table == "table4" else "coco30k"


def test_metric_networks_load_their_real_ids(on_toy_hub, tmp_path):
    """FD-DINOv2, CMMD and PickScore with published weights (the default) read their hub ids from the toy hub."""
    rc, _, err = run_cli("run", "--method", "sd-turbo", *RUN, "--metrics", "fd_dinov2,cmmd,pickscore",
                         "--metric-args", "fd_dinov2.weights=pretrained,cmmd.weights=pretrained,"
                         "pickscore.weights=pretrained", "--out", str(tmp_path), "--run-name", "m")
    assert rc == 0, err
    results = _results(tmp_path / "m")
    assert {"fd_dinov2", "cmmd", "pickscore"} <= set(results["metrics"])
    for name in ("fd_dinov2", "cmmd", "pickscore"):  # read from the hub, and known to be the toy hub's
        info = results["metric_info"][name]
        assert info["weights"] == "random" and info["toy_hub"] and not info["comparable"], info


@pytest.mark.parametrize("flag,value", [("--batch-size", "-5"), ("--limit", "0"), ("--workers", "0"),
                                        ("--profile", "no-such"), ("--suite-args", "profile")])
def test_reproduce_dry_run_refuses_what_the_runs_would_refuse(flag, value):
    rc, out, err = run_cli("reproduce", "table1", "--dry-run", flag, value)
    assert rc == 2 and not out and len(err.strip().splitlines()) == 1, err
