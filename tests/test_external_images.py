"""``--method images``: a finished run's images, read back from its directory, a folder, a zip and an .npz batch,
give exactly the run's metrics (tar archives: tests/test_image_layouts.py); a changed image is a different run;
gaps stop the run in one line."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from bench.errors import BenchError

pytestmark = pytest.mark.usefixtures("one_thread_module")
LIMIT = 8


@pytest.fixture(scope="module")
def session():
    from bench.session import Session

    return Session(device="cpu")


@pytest.fixture(scope="module")
def original(session, tmp_path_factory):
    """A tiny-method run of the smoke suite's first 8 prompts (every default metric)."""
    out = tmp_path_factory.mktemp("orig")
    results = session.evaluate("tiny", "smoke", out=str(out), run_name="orig", limit=LIMIT)
    return out / "orig", results


def _pixels(run_dir: Path) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((run_dir / "images").glob("*.png"))])


def _sources(run_dir: Path, root: Path) -> dict[str, Path]:
    folder = root / "folder"
    shutil.copytree(run_dir / "images", folder)
    with zipfile.ZipFile(root / "images.zip", "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"images/{p.name}")
    np.savez(root / "batch.npz", arr_0=_pixels(run_dir))
    return {"run": run_dir, "folder": folder, "zip": root / "images.zip", "npz": root / "batch.npz"}


def test_images_of_a_run_give_its_metrics_bit_for_bit(session, original, tmp_path):
    run_dir, orig = original
    expected = {k: v for k, v in orig.metrics.items() if k != "latency_ms"}
    assert "latency_ms" in orig.metrics and len(expected) >= 6
    intervals = {k: v.get("ci95") for k, v in orig.metric_info.items() if k != "latency"}
    for kind, src in _sources(run_dir, tmp_path).items():
        got = session.evaluate("images", "smoke", method_args={"dir": str(src)}, out=str(tmp_path / "runs"),
                               run_name=kind, limit=LIMIT)
        assert got.metrics == expected, kind  # exactly equal, not approximately
        assert {k: v.get("ci95") for k, v in got.metric_info.items()} == intervals, kind
        assert got.produced_by == "external" and got.config["generator"]["weights"] == "external"
        assert got.images["missing"] == 0 and got.images["produced_by"] == "external"
        # the run's own directory by its manifest; copies of its numbered files by number; a batch by row
        assert got.config["generator"]["match"] == {"run": "run", "npz": "index"}.get(kind, "sbv2")
        rows = [json.loads(line) for line in (tmp_path / "runs" / kind / "manifest.jsonl").read_text().splitlines()]
        assert [r["sha256"] for r in rows] == [json.loads(line)["sha256"] for line in
                                                (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert "generator weights" not in " ".join(got.not_comparable_because)
    from bench.report import results_table

    assert "[images made elsewhere: external]" in results_table(got)
    assert "images made elsewhere" not in results_table(orig)


def test_a_changed_image_is_a_different_run_and_an_unchanged_one_resumes(session, original, tmp_path):
    run_dir, orig = original
    folder = tmp_path / "imgs"
    shutil.copytree(run_dir / "images", folder)
    kwargs = dict(method_args={"dir": str(folder)}, out=str(tmp_path / "runs"), run_name="r", limit=LIMIT,
                  metrics=["fid"])
    first = session.evaluate("images", "smoke", **kwargs)
    again = session.evaluate("images", "smoke", **kwargs)
    assert again.images["resumed"] and again.metrics == first.metrics == {"fid": orig.metrics["fid"]}
    from PIL import Image

    img = np.asarray(Image.open(folder / "00003.png")).copy()
    img[0, 0] ^= 1
    Image.fromarray(img).save(folder / "00003.png")
    with pytest.raises(BenchError, match="different .*inputs"):
        session.evaluate("images", "smoke", **kwargs)
    changed = session.evaluate("images", "smoke", **{**kwargs, "run_name": "r2"})
    assert changed.metrics["fid"] != first.metrics["fid"]


def test_gaps_stop_the_run_in_one_line_unless_allowed(original, tmp_path):
    run_dir, _ = original
    folder = tmp_path / "gaps"
    shutil.copytree(run_dir / "images", folder)
    (folder / "00002.png").unlink()
    (folder / "00005.png").unlink()
    shutil.copy(folder / "00000.png", folder / "0000000x.png")  # 7 files in all
    base = ("run", "--method", "images", "--suite", "smoke", "--limit", str(LIMIT), "--metrics", "none",
            "--out", str(tmp_path / "runs"), "--device", "cpu")
    # by file-name order the 7 files fill samples 0-6: sample 7 is missing
    code, _, err = run_cli(*base, "--method-args", f"dir={folder},match=index")
    assert code == 2 and "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("bench: error")]
    assert len(line) == 1 and "1 sample(s) without an image (sample 7)" in line[0] and "allow_missing=true" in line[0]
    # the project's own names: 00002 and 00005 missing, the odd name matches nothing; said in one line
    mapping = tmp_path / "map.csv"
    prompts = [json.loads(r)["prompt"] for r in (run_dir / "manifest.jsonl").read_text().splitlines()]
    mapping.write_text("file,prompt\n" + "".join(f"{i:05d}.png,\"{prompts[i]}\"\n" for i in (0, 1, 3, 4, 6, 7))
                       + f"0000000x.png,\"{prompts[0]}\"\n")
    code, _, err = run_cli(*base, "--method-args", f"dir={folder},mapping={mapping}")
    assert code == 2 and len([ln for ln in err.splitlines() if ln.startswith("bench: error")]) == 1
    # sample 0's prompt is listed twice but the suite has it once: the second file matches no sample
    assert "2 sample(s) without an image (sample 2, 5)" in err and "1 image(s) matching no sample (0000000x.png)" in err
    code, out, err = run_cli(*base, "--method-args", f"dir={folder},mapping={mapping},allow_missing=true",
                             "--run-name", "allowed", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["num_samples"] == 6 and res["images"]["missing"] == 2
    assert any("have no image" in r for r in res["not_comparable_because"])
    # two files for one sample: never guessed, not even with allow_missing
    dup = tmp_path / "dup"
    dup.mkdir()
    for name in ("00000000.png", "sub/00000000.png"):
        (dup / name).parent.mkdir(exist_ok=True)
        shutil.copy(folder / "00000.png", dup / name)
    code, _, err = run_cli(*base, "--method-args", f"dir={dup},match=sbv2,allow_missing=true")
    assert code == 2 and "more than one image (sample 0: 00000000.png and sub/00000000.png)" in err


def test_unreadable_image_is_named_and_latency_is_refused(original, tmp_path):
    run_dir, _ = original
    folder = tmp_path / "bad"
    shutil.copytree(run_dir / "images", folder)
    (folder / "00004.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    base = ("run", "--method", "images", "--method-args", f"dir={folder}", "--suite", "smoke", "--limit", str(LIMIT),
            "--out", str(tmp_path / "runs"), "--device", "cpu")
    code, _, err = run_cli(*base, "--metrics", "none")
    assert code == 2 and "00004.png is truncated or unreadable" in err and "Traceback" not in err
    code, _, err = run_cli(*base, "--metrics", "latency")
    assert code == 2 and "drop it from --metrics" in err
    # a run directory that would hold (and could replace) the images it reads is refused
    code, _, err = run_cli("run", "--method", "images", "--method-args", f"dir={run_dir}", "--suite", "smoke",
                           "--limit", str(LIMIT), "--metrics", "none", "--out", str(run_dir.parent), "--run-name",
                           run_dir.name, "--overwrite", "--device", "cpu")
    assert code == 2 and "overlap" in err and (run_dir / "manifest.jsonl").is_file()
