"""Protocol profiles, shipped prompt lists, prompt files and the crop rounding of the evaluation transform."""

from __future__ import annotations

import hashlib
import json
import lzma
from importlib import resources

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from bench.errors import BenchError


# -- crop rounding ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [0, 1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("landscape", [True, False])
def test_round_crop_is_torchvision_center_crop(extra, landscape):
    """Every class of (long - short) mod 4, both orientations: "round" is torchvision's center_crop (what the
    release ran), "floor" differs from it by one pixel exactly when (long - short) % 4 == 3."""
    import torchvision.transforms.functional as TF

    from bench.metrics.preprocess import Preprocess, crop_box

    short = 21
    w, h = (short + extra, short) if landscape else (short, short + extra)
    img = np.random.default_rng(extra).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pil = Image.fromarray(img)
    expected = np.asarray(TF.center_crop(pil, min(pil.size)).resize((16, 16), Image.Resampling.LANCZOS))
    assert np.array_equal(Preprocess(size=16, crop_rounding="round")(img), expected)
    floor = Preprocess(size=16, crop_rounding="floor")(img)
    assert np.array_equal(floor, expected) == (extra % 4 != 3)
    left, top, _, _ = crop_box(w, h, "floor")
    assert max(left, top) == extra // 2


def test_crop_rounding_is_validated_and_recorded():
    from bench.metrics.preprocess import Preprocess
    from bench.suites.coco import Coco30kSuite

    with pytest.raises(BenchError, match="crop rounding"):
        Preprocess(crop_rounding="ceil")
    assert Coco30kSuite().preprocess().crop_rounding == "round"
    assert Coco30kSuite(profile="clean").preprocess().crop_rounding == "floor"
    assert Coco30kSuite(profile="clean", eval_crop_rounding="round").protocol()["preprocess"]["crop_rounding"] == "round"


# -- shipped prompt lists -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "count", "first", "last"), [
    ("sbv2", 40_504, "A man with a red helmet on a small moped on a dirt road. ",
     "a man in glasses is holding a wine glass"),
    ("dmd2", 30_000, "This wire metal rack holds several pairs of shoes and sandals",
     "A picture of a man in a blue baseball uniform pitching for his team."),
])
def test_shipped_prompt_lists(name, count, first, last):
    from bench.suites.prompt_lists import NAMED_LISTS, named_list, named_list_bytes

    prompts = named_list(name)
    assert len(prompts) == count and prompts[0] == first and prompts[-1] == last
    assert hashlib.sha256(named_list_bytes(name)).hexdigest() == NAMED_LISTS[name].sha256
    packed = resources.files("bench.suites").joinpath("data", NAMED_LISTS[name].filename).read_bytes()
    assert hashlib.sha256(lzma.decompress(packed)).hexdigest() == NAMED_LISTS[name].sha256


def test_release_list_is_its_first_30000_in_file_order():
    from bench.suites.coco import Coco30kSuite
    from bench.suites.prompt_lists import named_list

    items = Coco30kSuite().prompts()
    assert len(items) == 30_000
    assert items[29_999].prompt == "A sign stands in front of a building on the street."
    assert [it.prompt for it in items[:50]] == named_list("sbv2")[:50]
    assert Coco30kSuite(profile="dmd2").prompts()[0].prompt == named_list("dmd2")[0]


def test_a_damaged_list_is_a_one_line_error(monkeypatch):
    from bench.suites import prompt_lists

    spec = prompt_lists.NAMED_LISTS["dmd2"]
    monkeypatch.setitem(prompt_lists.NAMED_LISTS, "dmd2", type(spec)(**{**spec.__dict__, "sha256": "0" * 64}))
    monkeypatch.setattr(prompt_lists, "_CACHE", {})
    with pytest.raises(BenchError, match="has sha256 edabd2a556026cbf") as info:
        prompt_lists.named_list("dmd2")
    assert "\n" not in str(info.value) and "reinstall" in str(info.value)


def test_release_json_file_keeps_captions_as_stored(coco_root, tmp_path):
    labels = [["00000/img00000000.png", "A man on a moped. "], ["00000/img00000001.png", "  two dogs"]]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": labels}))
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root),
                         "--prompts", str(path), "--metrics", "none", "--device", "cpu", "--out", str(tmp_path / "o"))
    assert rc == 0, err
    run_dir = tmp_path / "o" / "coco30k-tiny"
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["A man on a moped. ", "  two dogs"]
    assert json.loads((run_dir / "config.json").read_text())["protocol"]["prompt_list"] == "file"


def test_the_release_file_itself_is_the_profile_list(tmp_path):
    """Passing (a prefix of) the release's own dataset.json is as good as the named list: no prompt issue."""
    from bench.suites.coco import Coco30kSuite
    from bench.suites.prompt_lists import named_list_bytes

    data = json.loads(named_list_bytes("sbv2"))
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": data["labels"][:7]}))
    suite = Coco30kSuite(prompts=str(path), data_root=str(tmp_path / "nowhere"))
    assert suite.comparability_issues({}) == ["7 prompts instead of the protocol's 30000"]
    other = Coco30kSuite(prompts="dmd2", num_prompts=7, data_root=str(tmp_path / "nowhere"))
    assert other.comparability_issues({})[0].startswith("prompts: named list 'dmd2', first 7 in file order")


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"captions": ["a cat"]}', "not the SBv2 release format"),
    (b'{"labels": [["only-a-name"]]}', "not the SBv2 release format"),
    (b'{"labels": []}', "holds no prompts"),
    (b"a cat\x00\x01\x02binary", "binary data"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8"),
    (b"3.5", None),  # a number is a one-line text prompt
], ids=["other-object", "bad-labels", "no-labels", "nul-bytes", "png", "number"])
def test_malformed_prompt_files_are_one_line_errors(content, expected, coco_root, tmp_path):
    path = tmp_path / "prompts.json"
    path.write_bytes(content)
    out = tmp_path / "runs"
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root),
                         "--prompts", str(path), "--metrics", "none", "--device", "cpu", "--out", str(out))
    if expected is None:
        assert rc == 0, err
        return
    assert rc == 2 and err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert expected in err and str(path) in err
    assert not out.exists()


# -- profiles -----------------------------------------------------------------------------------------------------
def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _changed(a, b):
    fa, fb = _flatten(a), _flatten(b)
    return {k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}


def test_a_profile_switch_changes_exactly_its_settings(tmp_path):
    from bench.suites.coco import Coco30kSuite

    release = Coco30kSuite(data_root=str(tmp_path)).protocol()
    clean = Coco30kSuite(data_root=str(tmp_path), profile="clean").protocol()
    changed = {k for k in _changed(release, clean) if not k.startswith("profile.")}
    assert changed == {"options.profile", "preprocess.crop_rounding", "metric_options.precision_recall.features",
                       "metric_options.precision_recall.channels", "metric_options.precision_recall.distances",
                       "metric_options.hps.version"}
    assert release["profile"]["name"] == "sbv2-release" and len(release["profile"]["quirks"]) == 4
    assert clean["profile"]["quirks"] == []
    assert release["preprocess"]["crop_rounding"] == "round" and clean["preprocess"]["crop_rounding"] == "floor"
    assert release["metric_options"]["precision_recall"] == {"features": "inception_tf1", "channels": "bgr",
                                                              "distances": "fp16-adm", "k": 3}
    assert release["metric_options"]["clip_score"]["precision"] == "fp32"
    assert release["metric_options"]["inception_score"]["variant"] == "torch-fidelity"
    dmd2 = Coco30kSuite(data_root=str(tmp_path), profile="dmd2").protocol()
    changed = {k for k in _changed(release, dmd2) if not k.startswith("profile.")}
    assert changed == {"options.profile", "prompt_list", "prompt_source", "prompts_sha256"}


def test_hpsv2_profile_picks_the_hps_version(hpsv2_prompts):
    from bench.suites.hpsv2 import HPSv2Suite

    assert HPSv2Suite(prompts=str(hpsv2_prompts)).metric_options()["hps"] == {"version": "v2.1"}
    assert HPSv2Suite(prompts=str(hpsv2_prompts), profile="clean").metric_options()["hps"] == {"version": "v2.0"}
    issues = HPSv2Suite(prompts=str(hpsv2_prompts)).comparability_issues({"hps": {"version": "v2.0"}})
    assert "metric option hps.version=v2.0 overrides the sbv2-release profile" in issues


def test_comparability_names_each_broken_setting(coco_root):
    from bench.suites.coco import Coco30kSuite

    suite = Coco30kSuite(data_root=str(coco_root))
    refs = "12 reference images instead of all 40504 of val2014"
    assert suite.comparability_issues({}) == [refs]
    same = {"precision_recall": {"k": "3", "distances": "fp16-adm"}, "clip_score": {"percent": "true"}}
    assert suite.comparability_issues(same) == [refs], "restating the profile or a display option is fine"
    issues = suite.comparability_issues({"precision_recall": {"distances": "exact"}, "clip_score": {"seed": "2"}})
    assert issues == ["metric option clip_score.seed=2 overrides the sbv2-release profile",
                      "metric option precision_recall.distances=exact overrides the sbv2-release profile", refs]
    floor = Coco30kSuite(data_root=str(coco_root), eval_crop_rounding="floor")
    assert floor.comparability_issues({})[0] == ("evaluation transform crop_rounding=floor instead of the "
                                                  "sbv2-release profile's round")
    hashed = Coco30kSuite(data_root=str(coco_root), prompts="hash", num_prompts=12)
    assert hashed.comparability_issues({})[0].startswith("prompts: captions_val2014.json, selection rule v1")


def test_results_record_the_profile_and_why_not_comparable(coco_root, tmp_path, toy):
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root),
                         "--suite-args", "num_prompts=3,eval_crop_rounding=floor", "--metrics", "toy_fid",
                         "--batch-size", "3", "--device", "cpu", "--out", str(tmp_path))
    assert rc == 0, err
    results = json.loads((tmp_path / "coco30k-tiny" / "results.json").read_text())
    assert results["comparable"] is False
    reasons = results["not_comparable_because"]
    assert "evaluation transform crop_rounding=floor instead of the sbv2-release profile's round" in reasons
    assert "3 prompts instead of the protocol's 30000" in reasons
    profile = results["config"]["protocol"]["profile"]
    assert profile["name"] == "sbv2-release" and profile["quirks"][0].startswith("crop-offset-round-half-even")


def test_profiles_are_listed():
    rc, out, _ = run_cli("list", "profiles", "--json")
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(out)["profiles"]}
    assert set(rows) == {"sbv2-release", "sbv2-paper", "clean", "dmd2"}
    paper = rows["sbv2-paper"]["settings"]
    assert paper["hps.version"] == "v2.0" and rows["sbv2-release"]["settings"]["hps.version"] == "v2.1"
    assert {k: v for k, v in paper.items() if k != "hps.version"} == {
        k: v for k, v in rows["sbv2-release"]["settings"].items() if k != "hps.version"}
    assert rows["sbv2-release"]["default"] and not rows["clean"]["default"]
    assert rows["dmd2"]["settings"]["prompts"] == "dmd2"
    assert rows["clean"]["settings"]["precision_recall.distances"] == "exact"
    rc, out, _ = run_cli("list", "profiles")
    assert rc == 0 and "sbv2-release" in out and "clean" in out


def test_unknown_profile_and_list_are_one_line_errors(coco_root, tmp_path):
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "coco30k", "--suite-args", "profile=sbv3",
                         "--metrics", "none", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "sbv2-release" in err
    rc, _, err = run_cli("run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(coco_root),
                         "--suite-args", "num_prompts=40505", "--metrics", "none", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "num_prompts=40505" in err and "40504" in err
