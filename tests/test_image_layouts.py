"""Each layout users come from is recognised (``match=auto``) and pairs every image with the right sample: the
SBv2 release's names, the HPSv2 benchmark's folders, DMD2's and the ADM evaluator's arrays, this project's run
directories (also zipped), CSV/JSONL lists, and plain file-name order."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from bench.errors import BenchError
from bench.image_matching import match, natural_key
from bench.image_sources import BatchSource, open_source


def _png(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value % 256, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write(folder: Path, names: list[str]) -> None:
    for k, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(_png(k))


@pytest.fixture
def smoke_items():
    from bench.suites.smoke import SmokeSuite

    return SmokeSuite().prompts()


def test_sbv2_release_names(tmp_path, smoke_items):
    # infer.py writes <output_dir>/<parent>_<name>/{idx:08d}.png; tools/resize.py keeps the names
    folder = tmp_path / "fid-data" / "ckpt_unet_ema"
    names = [f"{i:08d}.png" for i in reversed(range(len(smoke_items)))]
    _write(folder, names)
    m = match(open_source(folder), smoke_items)
    assert m.rule == "sbv2" and not m.extra and not m.duplicate
    assert m.by_index == {i: f"{i:08d}.png" for i in range(len(smoke_items))}
    # the release's scorer reads any numbered name (int of the stem); a number beyond the suite matches nothing
    (folder / "00000003.png").rename(folder / "3.png")
    (folder / "123.png").write_bytes(_png(0))
    m = match(open_source(folder), smoke_items)
    assert m.rule == "sbv2" and m.by_index[3] == "3.png" and m.extra == ["123.png"]


def test_hpsv2_benchmark_folders_end_to_end(tmp_path, hpsv2_prompts):
    from PIL import Image

    from bench.suites.hpsv2 import STYLES, HPSv2Suite

    items = HPSv2Suite(prompts=str(hpsv2_prompts)).prompts()
    folder = tmp_path / "hps-out"
    for s, style in enumerate(STYLES):
        (folder / style).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.full((16, 16, 3), 40 * s + k, np.uint8)).save(folder / style / f"{k:05d}.jpg")
    m = match(open_source(folder), items)
    assert m.rule == "hpsv2"
    rank = {}
    for it in items:
        rank[it.index] = sum(1 for o in items if o.group == it.group and o.index < it.index)
        assert m.by_index[it.index] == f"{it.group}/{rank[it.index]:05d}.jpg"
    code, _, err = run_cli("run", "--method", "images", "--method-args", f"dir={folder}", "--suite", "hpsv2",
                           "--prompts", str(hpsv2_prompts), "--metrics", "none", "--out", str(tmp_path / "runs"),
                           "--device", "cpu")
    assert code == 0, err
    assert "matched to samples by rule 'hpsv2'" in err
    run = tmp_path / "runs" / "hpsv2-images"
    rows = [json.loads(r) for r in (run / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(items)
    for row in rows:  # kept byte for byte, in the suite's own layout
        assert (run / row["path"]).read_bytes() == (folder / row["source"]).read_bytes()
        assert row["path"] == f"images/{row['source']}"


def test_dmd2_and_adm_arrays(tmp_path, smoke_items):
    images = np.random.default_rng(0).integers(0, 256, (len(smoke_items), 8, 8, 3), dtype=np.uint8)
    captions = [it.prompt for it in smoke_items]
    np.savez(tmp_path / "dmd2.npz", all_images=images, all_captions=np.array(captions))
    np.savez(tmp_path / "adm.npz", arr_0=images)
    np.savez_compressed(tmp_path / "adm-compressed.npz", arr_0=images)
    for name in ("dmd2.npz", "adm.npz", "adm-compressed.npz"):
        src = open_source(tmp_path / name)
        assert isinstance(src, BatchSource)
        m = match(src, smoke_items)
        assert m.rule == "index" and len(m.by_index) == len(smoke_items)
        np.testing.assert_array_equal(src.read(m.by_index[5]).pixels, images[5])
    assert isinstance(open_source(tmp_path / "adm.npz").images, np.memmap)  # a 30K batch is not loaded whole
    np.savez(tmp_path / "other.npz", all_images=images, all_captions=np.array(captions[::-1]))
    with pytest.raises(BenchError, match="row 0 was made for the prompt"):
        match(open_source(tmp_path / "other.npz"), smoke_items)
    np.savez(tmp_path / "float.npz", arr_0=images.astype(np.float32))
    with pytest.raises(BenchError, match="not uint8 N x H x W x 3"):
        open_source(tmp_path / "float.npz")


def _fake_run(folder: Path, items, order) -> None:
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in order:
        (folder / "images" / f"{i:05d}.png").write_bytes(_png(i))
        rows.append({"index": i, "prompt": items[i].prompt, "path": f"images/{i:05d}.png", "sha256": "x"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "config.json").write_text("{}")


def test_this_projects_run_directory_and_its_zip(tmp_path, smoke_items):
    run = tmp_path / "smoke-tiny"
    _fake_run(run, smoke_items, range(len(smoke_items)))
    m = match(open_source(run), smoke_items)
    assert m.rule == "run" and m.by_index[7] == "images/00007.png" and not m.extra
    with zipfile.ZipFile(tmp_path / "run.zip", "w") as zf:
        for p in sorted(run.rglob("*")):
            zf.write(p, f"smoke-tiny/{p.relative_to(run).as_posix()}")
    m = match(open_source(tmp_path / "run.zip"), smoke_items)
    assert m.rule == "run" and m.by_index[7] == "smoke-tiny/images/00007.png"
    with tarfile.open(tmp_path / "run.tar", "w") as tf:
        tf.add(run, arcname="smoke-tiny")
    tar = open_source(tmp_path / "run.tar")
    m = match(tar, smoke_items)
    assert m.rule == "run" and m.by_index[7] == "smoke-tiny/images/00007.png"
    got = tar.read(m.by_index[7])
    assert got.data == (run / "images" / "00007.png").read_bytes() and got.ext == "png" and got.pixels[0, 0, 0] == 7
    other = [type(it)(it.index, it.prompt + " (changed)") for it in smoke_items]
    with pytest.raises(BenchError, match="was made for the prompt"):
        match(open_source(run), other)


def test_csv_and_jsonl_lists(tmp_path, smoke_items):
    folder = tmp_path / "mine"
    names = [f"pic_{k}.webp" for k in range(len(smoke_items))]
    from PIL import Image

    folder.mkdir()
    for k, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), k, np.uint8)).save(folder / name, format="WEBP", lossless=True)
    order = list(np.random.default_rng(1).permutation(len(smoke_items)))
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("file,prompt\n" + "".join(f"{names[k]},\"{smoke_items[k].prompt}\"\n" for k in order))
    jsonl_path = tmp_path / "list.jsonl"
    jsonl_path.write_text("".join(json.dumps({"file": names[k], "prompt": smoke_items[k].prompt}) + "\n"
                                  for k in order))
    for mapping in (csv_path, jsonl_path):
        m = match(open_source(folder), smoke_items, mapping=str(mapping))
        assert m.rule == "list" and m.by_index == {k: names[k] for k in range(len(smoke_items))}
    assert open_source(folder).read(names[3]).pixels[0, 0, 0] == 3


def test_plain_file_name_order_is_natural(tmp_path, smoke_items):
    folder = tmp_path / "plain"
    _write(folder, ["s10.png", "s2.png", "s1.png", "notes.txt.png.bak"])
    (folder / "notes.txt").write_text("not an image")
    m = match(open_source(folder), smoke_items[:3])
    assert m.rule == "index" and m.by_index == {0: "s1.png", 1: "s2.png", 2: "s10.png"}
    assert sorted(["a10", "a9", "b1"], key=natural_key) == ["a9", "a10", "b1"]
    with pytest.raises(BenchError, match="holds no images"):
        open_source(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)
