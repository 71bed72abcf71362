"""Time budget of a COCO-30K-style evaluation at reduced scale, extrapolated to 30,000 images.

Writes a synthetic COCO-2014-like root (procedural 640 x 480 JPEGs, one caption each) and runs
``bench run --suite coco30k`` with FID, CLIP score, precision/recall and density/coverage. A first short run
fills the reference-feature cache (the COCO-30K goal assumes cached reference features: generate 30,000 images
+ FID + CLIP + precision/recall in at most 10 minutes on one H100) and warms the compiler's caches. Then two
timed runs of different sizes give the cost per image (their difference) and the fixed cost (loading,
compiling, metric math); the 30,000-image figure is fixed + 30,000 x per-image.

The runs use the suite's default protocol profile (``sbv2-release``: two Inception passes, the clean-fid one
for FID and the TF1-resize + BGR one for the release's precision/recall) with CLIP in float32 as that profile
does (``--clip-precision amp`` times float16 autocast instead; several precisions give one variant each).
``--extra-metrics fd_dinov2,cmmd`` adds, per precision, a variant with those metrics on top.

On CUDA: ``sd-turbo`` with seeded random full-size weights, bf16, ``compile=true``, and the real metric
architectures with seeded random weights (Inception-v3 twice, open_clip ViT-g-14; DINOv2 ViT-L/14 and CLIP
ViT-L/14-336 for the extra metrics). Without CUDA: the ``tiny`` method, toy-size metric networks and a handful
of images, so the script keeps working. Numbers measured with random weights time the real computation; the
metric values mean nothing.

``--single N`` instead times one cold run of N images (nothing cached; prompts given with ``--prompts``)
against the larger size's reference images.

Run: ``python tests/perf/bench_coco_pipeline.py [--sizes 512,2560] [--batch-size 64]
[--clip-precision fp32,amp] [--extra-metrics fd_dinov2,cmmd] [--single N]``; JSON goes to ``results/perf/coco_pipeline-<device>.json`` (or
``coco_pipeline_single-<N>-<device>.json``; folder ``--out`` or ``$BENCH_PERF_OUT``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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

    def write(k: int) -> None:
        tile = draw_reference_image(k, size=max(width, height) // 4)
        pixels = np.kron(tile, np.ones((4, 4, 1), dtype=np.uint8))[:height, :width]
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        (root / "val2014" / f"COCO_val2014_{100_000 + k:012d}.jpg").write_bytes(buf.getvalue())

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))
    for k in range(n):
        image_id = 100_000 + k
        name = f"COCO_val2014_{image_id:012d}.jpg"
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


DEFAULT_METRICS = ("fid", "clip_score", "precision_recall", "density_coverage")


def settings(cuda: bool, precision: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Method, dtype, metrics and metric arguments of the benchmark runs; ``extra``: metrics added to the
    suite's defaults (random weights; toy-size networks without CUDA)."""
    clip_model = "ViT-g-14" if cuda else "ViT-B-32"
    method, method_args, dtype = ("sd-turbo", "weights=random,compile=true", "bf16") if cuda else ("tiny", "", "fp32")
    margs = ["fid.weights=random", "precision_recall.weights=random", "density_coverage.weights=random",
             "clip_score.weights=random", f"clip_score.model={clip_model}", f"clip_score.precision={precision}"]
    for metric in extra:
        margs += [f"{metric}.weights=random"] + ([] if cuda else [f"{metric}.size=tiny"])
    return {"method": method, "method_args": method_args, "dtype": dtype, "clip_model": clip_model,
            "metrics": ",".join((*DEFAULT_METRICS, *extra)), "metric_args": ",".join(margs)}


def run_args(cfg: dict[str, Any], root: Path, num_prompts: int, batch_size: int) -> list[str]:
    args = ["run", "--method", cfg["method"], "--suite", "coco30k", "--data-root", str(root),
            "--suite-args", f"num_prompts={num_prompts}", "--dtype", cfg["dtype"], "--batch-size", str(batch_size),
            "--metrics", cfg["metrics"], "--metric-args", cfg["metric_args"], "--json"]
    return args + (["--method-args", cfg["method_args"]] if cfg["method_args"] else [])


def describe(device: str, cfg: dict[str, Any], batch_size: int) -> dict[str, Any]:
    import torch

    return {
        "benchmark": "coco_pipeline", "device": device, "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "weights": "random: seeded weights in the real architectures (generator and metric networks); values "
                   "are meaningless, times are the real computation's",
        "method": cfg["method"], "method_args": cfg["method_args"], "dtype": cfg["dtype"],
        "batch_size": batch_size, "clip_model": cfg["clip_model"], "target_s": TARGET_S,
    }


def measure_single(n: int, n_reference: int, batch_size: int, precision: str) -> dict[str, Any]:
    """One cold run of ``n`` prompts (the synthetic captions, repeated, given with --prompts) against
    ``n_reference`` reference images, timed end to end: loading, compiling, reference features included."""
    import torch

    cuda = torch.cuda.is_available()
    cfg = settings(cuda, precision)
    record = describe(torch.cuda.get_device_name(0) if cuda else "cpu", cfg, batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["BENCH_CACHE_DIR"] = str(tmp_path / "cache")
        t = time.perf_counter()
        write_root(tmp_path / "coco", n_reference, 640, 480)
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("".join(f"a photo of thing {k} with {k % 97} parts\n" for k in range(n)))
        record["synthetic_data_s"] = time.perf_counter() - t
        t = time.perf_counter()
        result = run_once([*run_args(cfg, tmp_path / "coco", n, batch_size), "--prompts", str(prompts),
                           "--out", str(tmp_path / "run")])
        wall = time.perf_counter() - t
    record.update({
        "mode": "single cold run: nothing cached (compiler, reference features), reference features computed "
                "in the run",
        "n_images": n, "n_reference": n_reference, "clip_precision": precision, "wall_s": wall,
        "timing_s": result["timing_s"], "metrics": result["metrics"],
    })
    return record


def measure(sizes: tuple[int, int], batch_size: int, clip_precisions: list[str],
            save: Any = None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The benchmark record; ``save(record)`` is called after each variant's runs (partial results). Variants:
    each CLIP precision, then with ``extra`` each precision again with those metrics added."""
    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    small, large = sizes
    variants: dict[str, Any] = {}
    record = describe(device, settings(cuda, clip_precisions[0]), batch_size)
    record.update({
        "sizes": [small, large], "n_reference": large,
        "extrapolation": "per-image cost = (total(large) - total(small)) / (large - small); fixed cost = "
                         "total(small) - small x per-image; 30,000 images: fixed + 30,000 x per-image. The timed "
                         "runs start with reference features and compiler caches warm (see warm_run_timing_s "
                         "for a first, cold run)",
        "variants": variants,
    })
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["BENCH_CACHE_DIR"] = str(tmp_path / "cache")
        t = time.perf_counter()
        write_root(tmp_path / "coco", large, 640, 480)
        record["synthetic_data_s"] = time.perf_counter() - t
        plan = [(p, ()) for p in clip_precisions] + ([(p, extra) for p in clip_precisions] if extra else [])
        for precision, added in plan:
            name = "+".join((f"clip_{precision}", *added))
            cfg = settings(cuda, precision, added)
            common = run_args(cfg, tmp_path / "coco", large, batch_size)
            # first: fill the reference-feature cache and the compiler's caches
            warm = run_once([*common, "--limit", str(batch_size), "--out", str(tmp_path / f"warm-{name}")])
            runs = {n: run_once([*common, "--limit", str(n), "--out", str(tmp_path / f"timed-{name}-{n}")])
                    for n in (small, large)}
            t_small, t_large = runs[small]["timing_s"]["total"], runs[large]["timing_s"]["total"]
            per_image = (t_large - t_small) / (large - small)
            fixed = t_small - small * per_image
            variants[name] = {
                "clip_precision": precision, "metrics_run": cfg["metrics"],
                "protocol": runs[large]["config"].get("protocol"),
                "warm_run_timing_s": warm["timing_s"],
                "timing_s": {str(n): r["timing_s"] for n, r in runs.items()},
                "images_per_s_marginal": 1.0 / per_image,
                "fixed_s": fixed,
                "extrapolated_total_s_for_30k": fixed + FULL_PROMPTS * per_image,
                "meets_target": fixed + FULL_PROMPTS * per_image <= TARGET_S,
                "metrics": runs[large]["metrics"],
            }
            if save is not None:
                save(record)
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="two run sizes, small,large (default: 512,2560 on CUDA, 8,24 "
                   "on the CPU); multiples of the batch size keep every chunk full")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 on CUDA, 8 on the CPU")
    p.add_argument("--clip-precision", default="fp32",
                   help="comma-separated CLIP precisions to time (fp32: the sbv2-release profile's; amp)")
    p.add_argument("--extra-metrics", default="", help="comma-separated metrics to time on top of the suite's "
                   "defaults, as one more variant per precision (e.g. fd_dinov2,cmmd)")
    p.add_argument("--single", type=int, default=None, metavar="N",
                   help="instead: one cold run of N images against the larger size's reference images")
    p.add_argument("--out", default=None, help="output directory (default: results/perf, or $BENCH_PERF_OUT)")
    args = p.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    small, large = (int(x) for x in (args.sizes or ("512,2560" if cuda else "8,24")).split(","))
    if not 0 < small < large:
        p.error("--sizes needs two increasing sizes")
    out_dir = Path(args.out or os.environ.get("BENCH_PERF_OUT") or ROOT / "results" / "perf")
    out_dir.mkdir(parents=True, exist_ok=True)

    batch_size = args.batch_size or (64 if cuda else 8)

    def save(record: dict[str, Any], kind: str = "coco_pipeline") -> Path:
        from bench.devices import slug

        path = out_dir / f"{kind}-{slug(record['device'])}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        return path

    if args.single:
        record = measure_single(args.single, large, batch_size, args.clip_precision.split(",")[0])
        path = save(record, f"coco_pipeline_single-{args.single}")
        print(json.dumps({k: record[k] for k in ("device", "n_images", "wall_s", "timing_s")}, indent=2))
        print(f"wrote {path}")
        return 0
    extra = tuple(m for m in args.extra_metrics.split(",") if m)
    record = measure((small, large), batch_size, args.clip_precision.split(","), save, extra)
    path = save(record)
    summary = {k: {"extrapolated_total_s_for_30k": v["extrapolated_total_s_for_30k"],
                   "images_per_s_marginal": v["images_per_s_marginal"], "fixed_s": v["fixed_s"],
                   "large_run": v["timing_s"][str(large)]}
               for k, v in record["variants"].items()}
    print(json.dumps({"device": record["device"], **summary}, indent=2))
    print(f"wrote {path}")
    return 0


@pytest.mark.perf
def test_coco_pipeline_time_budget():
    assert main([]) == 0


if __name__ == "__main__":
    raise SystemExit(main())
