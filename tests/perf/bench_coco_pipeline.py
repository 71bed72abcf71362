"""Time budget of a COCO-30K-style evaluation at reduced scale, extrapolated to 30,000 images.

Writes a synthetic COCO-2014-like root (procedural 640 x 480 JPEGs, one caption each), runs
``bench run --suite coco30k`` with FID, CLIP score, precision/recall and density/coverage, then reads the
stage timings from results.json. Reference features are computed in a first, separate run, so the timed run
starts with them cached, as the COCO-30K goal assumes (generate 30,000 images + FID + CLIP + precision/recall
in at most 10 minutes on one H100).

On CUDA: ``sd-turbo`` with seeded random full-size weights, bf16, and the real metric architectures with
seeded random weights (Inception-v3, open_clip ViT-g-14). Without CUDA: the ``tiny`` method, a smaller CLIP
tower and a handful of images, so the script keeps working. Numbers measured with random weights time the
real computation; the metric values mean nothing.

Run: ``python tests/perf/bench_coco_pipeline.py [--n 2000] [--batch-size 64]``; JSON goes to
``results/perf/coco_pipeline-<device>.json`` (or ``--out`` / ``$BENCH_PERF_OUT``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_S = 600.0
FULL_PROMPTS = 30_000


def write_root(root: Path, n: int, width: int, height: int) -> None:
    """``n`` procedural JPEG images and one caption each, in the COCO 2014 layout."""
    import numpy as np
    from PIL import Image

    from bench.suites.smoke import draw_reference_image

    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val2014").mkdir(exist_ok=True)
    words = ["cat", "dog", "bus", "kite", "pizza", "train", "horse", "clock", "boat", "bench", "zebra", "vase"]
    images, annotations = [], []
    for k in range(n):
        image_id = 100_000 + k
        name = f"COCO_val2014_{image_id:012d}.jpg"
        tile = draw_reference_image(k, size=max(width, height) // 4)
        pixels = np.kron(tile, np.ones((4, 4, 1), dtype=np.uint8))[:height, :width]
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        (root / "val2014" / name).write_bytes(buf.getvalue())
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        annotations.append({"image_id": image_id, "id": k, "caption": f"a {words[k % 12]} number {k} in a photo"})
    ann = {"info": {}, "images": images, "licenses": [], "annotations": annotations}
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps(ann))


def run_once(args: list[str]) -> dict[str, Any]:
    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    from contextlib import redirect_stderr, redirect_stdout

    with redirect_stdout(out), redirect_stderr(err):
        rc = main(args)
    if rc != 0:
        raise RuntimeError(err.getvalue().strip().splitlines()[-1])
    return json.loads(out.getvalue())


def measure(n: int, batch_size: int) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    method, method_args, dtype = (
        ("sd-turbo", "weights=random", "bf16") if cuda else ("tiny", "", "fp32")
    )
    clip_model = "ViT-g-14" if cuda else "ViT-B-32"
    metric_args = ",".join([
        "fid.weights=random", "precision_recall.weights=random", "density_coverage.weights=random",
        "clip_score.weights=random", f"clip_score.model={clip_model}",
    ])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["BENCH_CACHE_DIR"] = str(tmp_path / "cache")
        t = time.perf_counter()
        write_root(tmp_path / "coco", n, 640, 480)
        data_s = time.perf_counter() - t
        common = ["run", "--method", method, "--suite", "coco30k", "--data-root", str(tmp_path / "coco"),
                  "--limit", str(n), "--suite-args", f"num_prompts={n}", "--dtype", dtype,
                  "--batch-size", str(batch_size), "--metric-args", metric_args, "--json"]
        if method_args:
            common += ["--method-args", method_args]
        # first run: fills the reference-feature cache (the goal assumes cached reference features)
        warm = run_once([*common, "--out", str(tmp_path / "warm")])
        timed = run_once([*common, "--out", str(tmp_path / "timed")])
    timing = timed["timing_s"]
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    per_image = {k: v / n for k, v in timing.items() if not k.startswith("reference_features")}
    fixed = timing.get("load", 0.0)
    extrapolated = fixed + (timing["total"] - fixed) * FULL_PROMPTS / n
    return {
        "benchmark": "coco_pipeline",
        "device": device,
        "weights": "random: seeded weights in the real architectures (generator and metric networks); values "
                   "are meaningless, times are the real computation's",
        "method": method, "method_args": method_args, "dtype": dtype, "batch_size": batch_size,
        "n_images": n, "n_reference": n, "clip_model": clip_model,
        "synthetic_data_s": data_s,
        "reference_run_timing_s": warm["timing_s"],
        "timing_s": timing,
        "seconds_per_image": per_image,
        "extrapolated_total_s_for_30k": extrapolated,
        "extrapolation": "load time once, every other stage scaled linearly from n to 30,000 images "
                         "(precision/recall grows faster than linearly, but is a small share here)",
        "target_s": TARGET_S,
        "metrics": timed["metrics"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="images (default: 2000 on CUDA, 16 on the CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 on CUDA, 8 on the CPU")
    p.add_argument("--out", default=None, help="output directory (default: results/perf, or $BENCH_PERF_OUT)")
    args = p.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    n = args.n or (2000 if cuda else 16)
    record = measure(n, args.batch_size or (64 if cuda else 8))
    out_dir = Path(args.out or os.environ.get("BENCH_PERF_OUT") or ROOT / "results" / "perf")
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", record["device"].lower()).strip("-")
    path = out_dir / f"coco_pipeline-{slug}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("device", "n_images", "timing_s", "extrapolated_total_s_for_30k")},
                     indent=2))
    print(f"wrote {path}")
    return 0


@pytest.mark.perf
def test_coco_pipeline_time_budget():
    assert main([]) == 0


if __name__ == "__main__":
    raise SystemExit(main())
