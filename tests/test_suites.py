"""The coco30k and hpsv2 suites: prompt selection, data layouts (folders and official zips), prompt files, the
hpsv2 image layout read back the way the hpsv2 package reads it, and a run with real (random-weight) networks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


# -- coco30k ----------------------------------------------------------------------------------------------------
def test_caption_selection_rule():
    from bench.errors import BenchError
    from bench.suites.coco import select_captions

    annotation = {"annotations": [
        {"image_id": img, "id": 10 * img + k, "caption": f"  caption {k}\n of image {img} "}
        for img in range(20) for k in range(3)
    ] + [{"image_id": 99, "id": 1, "caption": "   "}]}
    ten = select_captions(annotation, 10, seed=0)
    assert select_captions(annotation, 10, seed=0) == ten, "deterministic"
    assert select_captions(annotation, 4, seed=0) == ten[:4], "a smaller set is a prefix of a larger one"
    assert len({img for img, _ in ten}) == 10, "one caption per image"
    assert all(c == " ".join(c.split()) and c.startswith("caption") for _, c in ten), "white space normalised"
    assert 99 not in {img for img, _ in select_captions(annotation, 20, seed=0)}, "empty captions are dropped"
    assert select_captions(annotation, 10, seed=1) != ten
    assert len({c.split()[1] for _, c in select_captions(annotation, 20, seed=0)}) > 1, "captions vary per image"
    with pytest.raises(BenchError, match="fewer than num_prompts=21"):
        select_captions(annotation, 21)


def test_coco_folder_and_official_zips_give_the_same_suite(coco_root, coco_zip_root):
    from bench.suites.coco import Coco30kSuite

    folder = Coco30kSuite(data_root=str(coco_root), num_prompts=8, prompts="hash")
    zipped = Coco30kSuite(data_root=str(coco_zip_root), num_prompts=8, prompts="hash")
    assert [it.prompt for it in folder.prompts()] == [it.prompt for it in zipped.prompts()]
    assert folder.protocol() == zipped.protocol(), "where the data lives is not part of the protocol"
    refs_a, refs_b = folder.reference_set(), zipped.reference_set()
    assert len(refs_a) == len(refs_b) == 12
    assert [Path(n).name for n in refs_a.names] == [Path(n).name for n in refs_b.names]
    assert np.array_equal(np.asarray(refs_a.load(3)), np.asarray(refs_b.load(3)))
    issues = folder.comparability_issues({})
    assert {"8 prompts instead of the protocol's 30000", "12 reference images instead of all 40504 of val2014"} <= set(
        issues)
    assert len(issues) == 3 and issues[0].startswith("prompts: captions_val2014.json, selection rule v1"), issues


def test_coco_root_from_environment(coco_root, monkeypatch):
    from bench.suites.coco import Coco30kSuite

    monkeypatch.setenv("BENCH_COCO_ROOT", str(coco_root))
    assert len(Coco30kSuite(num_prompts=5, prompts="hash").prompts()) == 5


@pytest.mark.parametrize("kind", ["lines", "json"])
def test_prompt_file_replaces_the_selection(coco_root, tmp_path, kind):
    prompts = ["a red bicycle", "two cats on a sofa", "  a lighthouse  "]
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(prompts) + "\n\n" if kind == "lines" else json.dumps(prompts))
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root),
                         "--prompts", str(path), "--metrics", "none", "--device", "cpu", "--out", str(tmp_path / "o"))
    assert rc == 0, err
    run_dir = tmp_path / "o" / "coco30k-tiny"
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["a red bicycle", "two cats on a sofa", "a lighthouse"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["protocol"]["prompt_source"] == "file" and config["data"]["prompts"] == str(path)
    assert "prompts" not in config["suite_args"] and "data_root" not in config["suite_args"]


def test_coco_run_with_real_networks_streams_what_the_files_give(coco_root, tmp_path):
    """A coco30k run with CLIP (seeded random ViT-B-32) and limit: the features streamed during generation are
    bit-identical to features computed afterwards from the saved PNG files."""
    args = ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root), "--suite-args",
            "num_prompts=10,prompts=hash", "--limit", "6", "--batch-size", "3", "--metrics", "clip_score", "--metric-args",
            "clip_score.weights=random,clip_score.model=ViT-B-32", "--device", "cpu", "--out", str(tmp_path)]
    rc, out, err = run_cli(*args)
    assert rc == 0, err
    run_dir = tmp_path / "coco30k-tiny"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["num_samples"] == 6 and "clip_score" in results["metrics"]
    assert "--limit 6 evaluates a subset" in results["not_comparable_because"]
    assert "time:" in out and "generation" in out

    from bench.metrics.extractors import build_extractor
    from bench.run_features import features_in_batches
    from bench.suites.base import decode_image
    from bench.suites.coco import Coco30kSuite

    (feature_dir,) = [d for d in (run_dir / "features").iterdir() if d.is_dir()]
    streamed = np.load(feature_dir / "0000003-00003.npz")
    from bench import plugins

    clip = plugins.current().metrics.get("clip_score").build(weights="random", model="ViT-B-32",
                                                             precision="fp32")  # the profile's CLIP precision
    ext = build_extractor(clip.feature_specs()[0])
    assert feature_dir.name == ext.key()
    pre = Coco30kSuite(data_root=str(coco_root)).preprocess()
    files = [run_dir / "images" / f"{i:05d}.png" for i in (3, 4, 5)]
    from_files = features_in_batches(ext, np.stack([pre(decode_image(p, str(p))) for p in files]))
    assert np.array_equal(from_files, streamed["features"])


# -- hpsv2 ------------------------------------------------------------------------------------------------------
def _hpsv2_args(prompts: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--method", "tiny", "--suite", "hpsv2", "--prompts", str(prompts), "--batch-size", "5",
            "--metrics", "hps", "--metric-args", "hps.weights=random,hps.model=ViT-B-32", "--device", "cpu",
            "--out", str(out), *extra]


def test_hpsv2_layout_is_what_the_hpsv2_evaluator_reads(hpsv2_prompts, tmp_path):
    """Images land in <style>/{idx:05d}.jpg; scoring them the way hpsv2's benchmark evaluator does (list the
    style folders, open <style>/<idx>.jpg for prompt idx of <style>.json, score the decoded JPEG) gives the
    run's per-style scores, and the run's `hps` is their average."""
    rc, out, err = run_cli(*_hpsv2_args(hpsv2_prompts, tmp_path))
    assert rc == 0, err
    run_dir = tmp_path / "hpsv2-tiny"
    results = json.loads((run_dir / "results.json").read_text())
    images = run_dir / "images"
    assert sorted(os.listdir(images)) == ["anime", "concept-art", "paintings", "photo"]

    from PIL import Image

    from bench import plugins
    from bench.metrics.clip_score import paired_cosine
    from bench.metrics.extractors import build_extractor

    hps = plugins.current().metrics.get("hps").build(weights="random", model="ViT-B-32")
    scorer = build_extractor(hps.feature_specs()[0])
    per_style = {}
    for style in os.listdir(images):
        prompts = json.loads((hpsv2_prompts / f"{style}.json").read_text())
        assert sorted(os.listdir(images / style)) == [f"{i:05d}.jpg" for i in range(len(prompts))]
        pixels = np.stack([np.asarray(Image.open(images / style / f"{i:05d}.jpg").convert("RGB"))
                           for i in range(len(prompts))])
        scores = 100 * paired_cosine(scorer.image_features(pixels), scorer.text_features(prompts))
        per_style[style] = float(scores.mean())
    for style, value in per_style.items():
        assert results["metrics"][f"hps/{style}"] == pytest.approx(value, rel=2e-5)  # batching noise only; raw pixels would be ~1e-2 off
    run_styles = [results["metrics"][f"hps/{s}"] for s in per_style]
    assert results["metrics"]["hps"] == pytest.approx(np.mean(run_styles), rel=1e-12), "the average of the styles"
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["group"] for r in rows[:4]] == ["anime", "concept-art", "paintings", "photo"], "styles interleave"
    assert rows[5]["path"] == "images/concept-art/00001.jpg"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["protocol"]["jpeg_quality"] == 75 and config["protocol"]["styles"]["photo"] == 3


def test_hpsv2_limit_takes_every_style(hpsv2_prompts, tmp_path):
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "hpsv2", "--prompts", str(hpsv2_prompts), "--limit",
                         "8", "--metrics", "none", "--device", "cpu", "--out", str(tmp_path))
    assert rc == 0, err
    files = sorted(p.relative_to(tmp_path / "hpsv2-tiny" / "images").as_posix()
                   for p in (tmp_path / "hpsv2-tiny" / "images").rglob("*.jpg"))
    assert files == [f"{s}/{i:05d}.jpg" for s in ("anime", "concept-art", "paintings", "photo") for i in (0, 1)]


def test_hpsv2_without_prompts_offline_names_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_HPSV2_PROMPTS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "hpsv2", "--metrics", "none", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1
    assert "zhwang/HPDv2" in err and "benchmark/anime.json" in err and "--prompts DIR" in err
    assert not list(tmp_path.iterdir())


def test_suites_are_listed():
    rc, out, _ = run_cli("list", "suites", "--json")
    names = {row["name"] for row in json.loads(out)["suites"]}
    assert {"smoke", "coco30k", "hpsv2"} <= names
