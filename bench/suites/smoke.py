"""``smoke``: an offline end-to-end check of generation and every metric, in seconds on a CPU.

Prompts ship with the package; the reference set is 64 procedurally drawn images (seeded shapes and
gradients) written to the cache directory on first use. Metrics use their real architectures with seeded
random weights (CLIP-style scores on the smaller ViT-B-32 tower), so the numbers only show that the
pipeline works: they are not comparable to published figures.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache_dir import cache_dir
from bench.metrics.preprocess import preprocess_options
from bench.run_dir import atomic_write_bytes
from bench.suites.base import PromptItem, Suite

REFERENCE_COUNT = 64
REFERENCE_SIZE = 64


def draw_reference_image(index: int, size: int = REFERENCE_SIZE) -> np.ndarray:
    """A seeded picture: a two-colour gradient with a few filled rectangles and discs (uint8, size x size x 3)."""
    rng = np.random.default_rng([20240826, index])
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / (np.ptp(t) or 1.0)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(int(rng.integers(1, 5))):
        colour = rng.uniform(0, 255, 3)
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        if rng.random() < 0.5:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
        else:
            mask = (abs(xx - cx) <= r) & (abs(yy - cy) <= r * rng.uniform(0.3, 1.0))
        img[mask] = colour
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


class SmokeSuite(Suite):
    """32 bundled prompts, 64 procedural reference images, every metric with seeded random weights."""

    name = "smoke"
    default_metrics = ("fid", "precision_recall", "density_coverage", "clip_score", "hps", "latency")
    comparable = False
    options = preprocess_options()

    def prompts(self) -> list[PromptItem]:
        text = resources.files("bench.suites").joinpath("data/smoke_prompts.txt").read_text(encoding="utf-8")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        return [PromptItem(i, p) for i, p in enumerate(lines)]

    def reference_images(self) -> list[Path]:
        folder = cache_dir() / "smoke-reference" / f"v1-{REFERENCE_COUNT}x{REFERENCE_SIZE}"
        paths = [folder / f"{i:05d}.png" for i in range(REFERENCE_COUNT)]
        missing = [p for p in paths if not p.exists()]
        if missing:
            import io

            from PIL import Image

            folder.mkdir(parents=True, exist_ok=True)
            for p in missing:
                buf = io.BytesIO()
                Image.fromarray(draw_reference_image(int(p.stem))).save(buf, format="PNG")
                atomic_write_bytes(p, buf.getvalue())
        return paths

    def metric_options(self) -> dict[str, dict[str, Any]]:
        clip_like = {"weights": "random", "model": "ViT-B-32"}
        return {
            "fid": {"weights": "random"},
            "precision_recall": {"weights": "random"},
            "density_coverage": {"weights": "random"},
            "clip_score": dict(clip_like),
            "hps": dict(clip_like),
            "latency": {"warmup": 1, "iters": 3},
        }
