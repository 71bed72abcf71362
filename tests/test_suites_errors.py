"""Bad input to the suites: each stops with one line that says what to do, exit status 2, and loses nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def coco(root: Path | str, out: Path, *extra: str, metrics: str = "toy_fid") -> list[str]:
    return ["run", "--method", "tiny", "--suite", "coco30k", "--data-root", str(root), "--suite-args",
            "num_prompts=5", "--batch-size", "2", "--metrics", metrics, "--device", "cpu", "--out", str(out),
            "--prompts", "hash", *extra]  # the hash selection reads the annotation; a later --prompts wins


def assert_one_line_error(rc: int, err: str, *expected: str) -> str:
    """Exit status 2 and one line ``bench: error: ...`` (after any progress bars, which end with a cursor move)."""
    assert rc == 2, err
    assert err.count("bench: error: ") == 1, err
    line = err[err.index("bench: error: "):]
    assert line.count("\n") == 1, err
    for text in expected:
        assert text in line, line
    return line


def _no_captions(root: Path) -> None:
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": [{"image_id": 1, "id": 1, "bbox": [0, 0, 1, 1]}]}))


def _bad_json(root: Path) -> None:
    (root / "annotations" / "captions_val2014.json").write_text('{"annotations": [')


def _no_images(root: Path) -> None:
    shutil.rmtree(root / "val2014")


def _empty_root(root: Path) -> None:
    shutil.rmtree(root / "annotations")
    shutil.rmtree(root / "val2014")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (None, ("does not exist", "python -m bench data coco")),
        (_empty_root, ("has no annotations/captions_val2014.json", "--data-root")),
        (_no_images, ("has no val2014/", "reference images")),
        (_no_captions, ("holds no captions", "captions_val2014.json")),
        (_bad_json, ("is not valid JSON", "python -m bench data coco")),
    ],
    ids=["missing-root", "wrong-root", "no-images", "annotation-without-captions", "damaged-annotation"],
)
def test_bad_coco_root(damage, expected, make_coco_root, tmp_path, toy):
    root = tmp_path / "coco"
    if damage is not None:
        make_coco_root(root, n_images=6)
        damage(root)
    out = tmp_path / "runs"
    rc, _, err = run_cli(*coco(root, out))
    assert_one_line_error(rc, err, *expected)
    assert err.count("\n") == 1
    assert not out.exists(), "a rejected command must not write anything"


def test_too_many_prompts_for_the_annotation(coco_root, tmp_path, toy):
    args = coco(coco_root, tmp_path / "runs")
    args[args.index("num_prompts=5")] = "num_prompts=13"
    rc, _, err = run_cli(*args)
    assert_one_line_error(rc, err, "captions for 12 images", "num_prompts=13")


def test_limit_larger_than_the_prompt_set(coco_root, tmp_path, toy):
    rc, _, err = run_cli(*coco(coco_root, tmp_path / "runs", "--limit", "6"))
    assert_one_line_error(rc, err, "--limit 6 is larger than the 5 prompts", "use at most 5")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("flag", "value"), [("--limit", "0"), ("--batch-size", "0"), ("--workers", "0")])
def test_non_positive_counts_are_refused(coco_root, tmp_path, toy, flag, value):
    rc, _, err = run_cli(*coco(coco_root, tmp_path / "runs", flag, value))
    assert_one_line_error(rc, err, f"{flag} must be at least 1, got 0")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "holds no prompts"),
        (b"\n  \n\n", "holds no prompts"),
        (b"[]", "holds no prompts"),
        (b"\xff\xfe\x00caption", "is not UTF-8"),
        (b'["a", 3]', "JSON list of strings"),
        (b'["unterminated', "not valid JSON"),
        (None, "does not exist"),
        ("dir", "is a folder"),
    ],
    ids=["empty", "blank", "empty-json", "binary", "json-not-strings", "broken-json", "missing", "folder"],
)
def test_bad_prompt_file(content, expected, coco_root, tmp_path, toy):
    path = tmp_path / "prompts.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    out = tmp_path / "runs"
    rc, _, err = run_cli(*coco(coco_root, out, "--prompts", str(path)))
    assert_one_line_error(rc, err, expected, str(path))
    assert not out.exists()


def test_unreadable_prompt_file(coco_root, tmp_path, toy):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    path = tmp_path / "prompts.txt"
    path.write_text("a cat\n")
    path.chmod(0)
    rc, _, err = run_cli(*coco(coco_root, tmp_path / "runs", "--prompts", str(path)))
    assert_one_line_error(rc, err, "cannot be read")


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_truncated_reference_image_is_named_and_generated_images_are_kept(zipped, make_coco_root, tmp_path, toy):
    import zipfile

    root = make_coco_root(tmp_path / "coco", n_images=6, zipped=zipped)
    victim = "COCO_val2014_000000001014.jpg"
    if zipped:
        with zipfile.ZipFile(root / "val2014.zip") as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        members[f"val2014/{victim}"] = members[f"val2014/{victim}"][:200]
        with zipfile.ZipFile(root / "val2014.zip", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        path = root / "val2014" / victim
        path.write_bytes(path.read_bytes()[:200])
    out = tmp_path / "runs"
    rc, _, err = run_cli(*coco(root, out))
    assert_one_line_error(rc, err, victim, "truncated or unreadable")
    run_dir = out / "coco30k-tiny"
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(5)), "the generated images are all kept"
    assert all((run_dir / r["path"]).is_file() for r in rows)


def test_a_run_with_a_different_config_is_refused_unless_overwrite(coco_root, tmp_path, toy):
    out = tmp_path / "runs"
    rc, _, err = run_cli(*coco(coco_root, out, metrics="none"))
    assert rc == 0, err
    run_dir = out / "coco30k-tiny"
    before = {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    args = coco(coco_root, out, metrics="none")
    args[args.index("num_prompts=5")] = "num_prompts=5,prompt_seed=3"
    rc, _, err = run_cli(*args)
    assert_one_line_error(rc, err, "different suite_args, protocol", "--overwrite")
    after = {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before, "the refused command must not touch the existing run"
    # moving the data is not a different config
    moved = tmp_path / "moved"
    shutil.copytree(coco_root, moved)
    rc, _, err = run_cli(*coco(moved, out, metrics="none"))
    assert rc == 0, err
    rc, _, err = run_cli(*args, "--overwrite")
    assert rc == 0, err
    config = json.loads((run_dir / "config.json").read_text())
    assert config["suite_args"]["prompt_seed"] == 3
