"""Cost of the sbv2-release profile's extra work (``tox -e perf``; JSON under results/perf/).

``profiles-<device>.json``: per 256 px image, the clean-fid Inception pass every COCO run makes (clean resize +
network) against the second pass the sbv2-release profile adds for precision/recall (TF1 bilinear resize, BGR,
same network), as the ratio (both passes) / (one pass); and, on feature rows, the float16 ADM precision/recall
against the exact one. Random weights in the real Inception-v3 architecture (the published file is not needed:
the cost is the architecture's). Sizes: BENCH_PROFILES_IMAGES (default 32), BENCH_PROFILES_N (default 3000).
Run directly with ``python tests/perf/bench_profiles.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_precision_recall import machine  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def measure() -> dict:
    import torch

    from bench.metrics.extractors import build_extractor
    from bench.metrics.knn_adm import adm_precision_recall
    from bench.metrics.knn_exact import precision_recall

    n_img = int(os.environ.get("BENCH_PROFILES_IMAGES", "32"))
    n_feat = int(os.environ.get("BENCH_PROFILES_N", "3000"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = np.random.default_rng(0).integers(0, 256, (n_img, 256, 256, 3), dtype=np.uint8)
    clean = build_extractor({"kind": "inception", "weights": "random", "seed": 0}).to(device)
    tf1 = build_extractor({"kind": "inception_tf1", "weights": "random", "seed": 0, "channels": "bgr"}).to(device)
    clean.model  # noqa: B018 - build outside the timing
    tf1._model = clean.model  # same network: only the input path differs
    out: dict = {"device": device, "images": n_img, "image_size": 256}
    for name, ext in (("clean", clean), ("tf1_bgr", tf1)):
        prep = _median_time(lambda ext=ext: [ext.prepare(im) for im in images], 3)
        batch = np.stack([ext.prepare(im) for im in images])
        fwd = _median_time(lambda ext=ext, batch=batch: ext.forward(batch), 3)
        out[f"{name}_prepare_s_per_image"] = prep / n_img
        out[f"{name}_network_s_per_image"] = fwd / n_img
        out[f"{name}_total_s_per_image"] = (prep + fwd) / n_img
    out["second_pass_ratio"] = (out["clean_total_s_per_image"] + out["tf1_bgr_total_s_per_image"]) / out[
        "clean_total_s_per_image"]
    rng = np.random.default_rng(1)
    real = np.abs(rng.normal(0, 1, (n_feat, 2048))).astype(np.float32)
    fake = np.abs(rng.normal(0, 1.1, (n_feat, 2048))).astype(np.float32)
    out["features"] = n_feat
    out["pr_exact_s"] = _median_time(lambda: precision_recall(real, fake, device=device), 2)
    out["pr_fp16_adm_s"] = _median_time(lambda: adm_precision_recall(real, fake, device=device), 2)
    out["machine"] = machine()
    return out


def test_second_inception_pass_cost():
    record = {"benchmark": "profiles", **measure()}
    path = REPO / "results" / "perf" / f"profiles-{record['device']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    assert 1.0 < record["second_pass_ratio"] < 3.0, "the second pass reuses the images: at most one more pass"


if __name__ == "__main__":
    test_second_inception_pass_cost()
