"""The official EMA, resume checks by content, longer resumed runs, and alpha_T through merges and sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_cli
from safetensors.torch import load_file

from training.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
WEIGHTS = "diffusion_pytorch_model.safetensors"


def distill(out: Path, *settings: str, steps: int = 2, resume: str | None = None) -> int:
    argv = ["distill", "--preset", "tiny", "--output-dir", str(out), "--max-steps", str(steps),
            "--set", "progress_bar=false", "sample_every=0", "log_with=csv", *settings]
    return main([*argv, "--resume", resume] if resume else argv)


# -- EMA ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_decay", [0.9999, 0.9])
def test_official_ema_equals_diffusers_emamodel(max_decay):
    from diffusers.training_utils import EMAModel

    from training.checkpoint import EMA

    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3, generator=gen)), torch.nn.Parameter(torch.randn(7, generator=gen))]
    reference = EMAModel(params, decay=max_decay)  # what SwiftBrush's --use_ema builds (defaults otherwise)
    ours = EMA({f"p{i}": p for i, p in enumerate(params)}, max_decay, "official")
    for k in range(1, 31):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn(p.shape, generator=gen))
        reference.step(params)
        ours.update({f"p{i}": p for i, p in enumerate(params)}, k)
    for i, shadow in enumerate(reference.shadow_params):
        torch.testing.assert_close(ours.shadow[f"p{i}"], shadow, rtol=0, atol=1e-6)
    assert ours.decay_at(1) == 0.0 and ours.decay_at(2) == pytest.approx(2 / 11)
    fixed = EMA({"p": torch.zeros(1)}, 0.9, "fixed")
    fixed.update({"p": torch.ones(1)}, 1)
    assert float(fixed.shadow["p"]) == pytest.approx(0.1)  # the fixed rule starts from the initial weights


# -- resume ---------------------------------------------------------------------------------------------------
def test_edited_prompt_file_is_refused_on_resume(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\na lighthouse at dawn\n")
    run = tmp_path / "run"
    assert distill(run, f"prompts={prompts}") == 0
    prompts.write_text("a red fox\na lighthouse at dusk\n")  # same path, other content
    capsys.readouterr()
    assert distill(run, f"prompts={prompts}", resume="latest") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "prompt list's content changed" in err, err


def test_other_world_size_is_refused():
    from bench.errors import BenchError
    from training.checkpoint import check_same_inputs

    saved = {"world_size": 4, "prompts_sha256": "x"}
    check_same_inputs(saved, dict(saved), Path("ckpt"))
    with pytest.raises(BenchError, match="4 process"):
        check_same_inputs(saved, {**saved, "world_size": 2}, Path("ckpt"))


def test_longer_resumed_run_equals_a_fresh_run_of_that_length(tmp_path, capsys):
    constant = ("clip_schedule=constant",)
    assert distill(tmp_path / "resumed", *constant, steps=2) == 0
    assert distill(tmp_path / "resumed", *constant, steps=3, resume="latest") == 0
    assert distill(tmp_path / "fresh", *constant, steps=3) == 0
    a, b = (load_file(str(tmp_path / d / WEIGHTS)) for d in ("resumed", "fresh"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # with the CLIP weight decaying over max_steps, a longer run would not be what this run did: refused
    assert distill(tmp_path / "linear", steps=2) == 0
    capsys.readouterr()
    assert distill(tmp_path / "linear", steps=3, resume="latest") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CLIP loss weight decays" in err, err


def test_refused_start_leaves_no_empty_output_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")  # a launch that formed no process group
    out = tmp_path / "never"
    assert distill(out) == 2
    assert "no process group" in capsys.readouterr().err
    assert not out.exists()


# -- alpha_T through merges and sweeps ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_constants(tmp_path_factory):
    """Two tiny students, one trained with SwiftBrush's fixed alpha_T = 0.0047, one with the schedule's."""
    root = tmp_path_factory.mktemp("alpha")
    assert distill(root / "fixed", "student_alpha_T=0.0047", "seed=1") == 0
    assert distill(root / "schedule", "seed=2") == 0
    return root


def test_merge_card_records_the_merged_alpha_T(two_constants, tmp_path):
    from methods.student_merge import scheduler_alpha_T

    a, b = two_constants / "fixed", two_constants / "schedule"
    cards = {}
    for lam in (0.0, 1.0, 0.25):
        out = tmp_path / f"m{lam}"
        assert main(["merge", "--a", str(a), "--b", str(b), "--lambda", str(lam), "--output-dir", str(out)]) == 0
        cards[lam] = json.loads((out / "bench_model.json").read_text())
    assert cards[1.0]["alpha_T"] == 0.0047 and cards[0.0]["alpha_T"] is None
    assert cards[0.25]["alpha_T"] == pytest.approx(0.25 * 0.0047 + 0.75 * scheduler_alpha_T(), rel=1e-12)
    assert cards[0.25]["alpha_T_source"] == "merged"


def test_sweep_ends_reproduce_each_student_despite_different_alpha_T(two_constants, tmp_path, toy):
    a, b = two_constants / "fixed", two_constants / "schedule"
    common = ["--suite", "smoke", "--limit", "2", "--device", "cpu", "--metrics", "toy_fid"]
    rc, _, err = run_cli("sweep-merge", "--a", f"sbv2:weights={a}", "--b", f"sbv2:weights={b}", "--lambdas", "0,1",
                         "--out", str(tmp_path / "sweep"), *common)
    assert rc == 0, err
    for name, weights in (("b", b), ("a", a)):
        rc, _, err = run_cli("run", "--method", "sbv2", "--method-args", f"weights={weights}", "--out",
                             str(tmp_path / "runs"), "--run-name", name, *common)
        assert rc == 0, err
    sweep = json.loads(next((tmp_path / "sweep").rglob("sweep.json")).read_text())
    points = {p["lambda"]: (Path(next((tmp_path / "sweep").rglob("sweep.json")).parent / p["run_dir"]))
              for p in sweep["points"]}

    def hashes(run_dir: Path) -> list[str]:
        return [json.loads(line)["sha256"] for line in (run_dir / "manifest.jsonl").read_text().splitlines()]

    assert hashes(points[0.0]) == hashes(tmp_path / "runs" / "b")
    assert hashes(points[1.0]) == hashes(tmp_path / "runs" / "a")
    assert hashes(points[0.0]) != hashes(points[1.0])
