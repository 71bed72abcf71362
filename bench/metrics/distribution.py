"""Distribution distances on other feature networks than Inception: FD_DINOv2 (Stein et al. 2023, dgm-eval) and
CMMD (Jayasumana et al. 2024, google-research/cmmd).

* ``fd_dinov2``: the Frechet distance (as FID) between DINOv2 ViT-L/14 CLS features of generated and reference
  images, with dgm-eval's preprocessing (:class:`~bench.metrics.hf_extractors.Dinov2Extractor`). Images are
  centre-cropped to a square first (``crop=false``: dgm-eval's plain resize of the whole image, which
  stretches non-square reference photos); generated square images are unaffected.
* ``cmmd``: MMD^2 with a Gaussian kernel (sigma = 10) between L2-normalised CLIP ViT-L/14 embeddings at 336 px
  (``openai/clip-vit-large-patch14-336``), x 1000, with cmmd's estimator: the plain means of the three kernel
  matrices, diagonals included (a biased V-statistic). Images take cmmd's path: centre crop to the short side
  (offset floor((long - short) / 2)), PIL bicubic resize to 336 px in 8 bits, then [0, 1] and CLIP's
  normalisation (``crop=false``: the whole image, stretched).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, Metric, MetricContext, MetricResult, SampleNeeds
from bench.metrics.preprocess import Preprocess
from bench.options import Option

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
#: Rows per kernel tile (float64 tiles of TILE x TILE).
TILE = 2048

SIZE_OPTION = Option("full", str, ("full", "tiny"), "tiny: a toy-size network of the same family (random weights)")


def _kernel_apply(x: np.ndarray, y: np.ndarray, gamma: float, w: np.ndarray) -> np.ndarray:
    """K(x, y) @ w for the Gaussian kernel, in tiles (K is never held whole); ``w``: (len(y), B)."""
    xs, ys = (x * x).sum(1), (y * y).sum(1)
    out = np.zeros((len(x), w.shape[1]))
    for i in range(0, len(x), TILE):
        for j in range(0, len(y), TILE):
            d2 = xs[i : i + TILE, None] + ys[None, j : j + TILE] - 2.0 * (x[i : i + TILE] @ y[j : j + TILE].T)
            out[i : i + TILE] += np.exp(-gamma * np.maximum(d2, 0.0)) @ w[j : j + TILE]
    return out


def _kernel_mean(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Mean of exp(-gamma ||x_i - y_j||^2) over all pairs."""
    return float(_kernel_apply(x, y, gamma, np.ones((len(y), 1))).sum()) / (len(x) * len(y))


_KYY: dict[int, tuple[np.ndarray, float]] = {}


def cmmd(generated: Any, reference: Any, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """CMMD between embedding sets (rows, as given: normalise them first), as google-research/cmmd computes it:
    ``scale * (mean K_xx + mean K_yy - 2 mean K_xy)`` with K = exp(-||a - b||^2 / (2 sigma^2))."""
    x = np.asarray(generated, np.float64)
    y = np.asarray(reference, np.float64)
    gamma = 1.0 / (2.0 * sigma**2)
    memo = _KYY.get(id(reference))
    if memo is not None and memo[0] is reference:
        kyy = memo[1]
    else:
        kyy = _kernel_mean(y, y, gamma)
        _KYY.clear()
        _KYY[id(reference)] = (reference, kyy)
    return float(scale * (_kernel_mean(x, x, gamma) + kyy - 2.0 * _kernel_mean(x, y, gamma)))


def _transform(crop: bool) -> Preprocess:
    """The evaluation transform of these networks: the image at its own resolution, centre-cropped or not (the
    network's preparation resizes it)."""
    return Preprocess(size=None, center_crop=crop)


class _TwoSetMetric(Metric):
    """A distance between generated and reference features of one network with its own transform."""

    #: The registered extractor and its options beyond weights, seed and size.
    extractor = ""
    options = {"weights": WEIGHTS_OPTION, "seed": Option(0, int, minimum=0), "size": SIZE_OPTION,
               "crop": Option(True, bool, help="centre crop to a square before the resize")}

    def extractor_options(self) -> dict[str, Any]:
        return {}

    def spec(self) -> FeatureSpec:
        opts = {"weights": self.args["weights"], "seed": self.args["seed"], "size": self.args["size"],
                **self.extractor_options()}
        return FeatureSpec(self.extractor, opts, transform=_transform(self.args["crop"]))

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def features(self, ctx: MetricContext) -> tuple[np.ndarray, np.ndarray]:
        """(generated, reference) feature rows."""
        spec = self.spec()
        return ctx.image_features(spec, "generated"), ctx.image_features(spec, "reference")

    def result(self, value: float, gen: np.ndarray, ref: np.ndarray, **info: Any) -> MetricResult:
        return MetricResult({self.keys[0]: value}, self._info(n_generated=len(gen), n_reference=len(ref), **info))


class FDDinov2(_TwoSetMetric):
    """Frechet distance between DINOv2 ViT-L/14 features of generated and reference images (dgm-eval)."""

    name = "fd_dinov2"
    keys = ("fd_dinov2",)
    higher_is_better = {"fd_dinov2": False}
    extractor = "dinov2"
    options = {**_TwoSetMetric.options, "arch": Option("vitl14", str)}

    def hub_repos(self) -> tuple[str, ...]:
        from bench.metrics.hf_extractors import DINOV2_REPOS

        return (DINOV2_REPOS[self.args["arch"]],) if self.args["arch"] in DINOV2_REPOS else ()

    def extractor_options(self) -> dict[str, Any]:
        return {"arch": self.args["arch"]}

    def min_samples(self) -> SampleNeeds:
        from bench.metrics.fid import FRECHET_NEEDS

        return FRECHET_NEEDS

    def compute(self, ctx: MetricContext) -> MetricResult:
        from bench.metrics.fid import frechet_to_reference

        gen, ref = self.features(ctx)
        value = frechet_to_reference(gen, ref, self._stats_key())
        return self.result(value, gen, ref, features=f"DINOv2 {self.args['arch']} CLS token (dgm-eval preprocessing)")

    def _stats_key(self) -> dict[str, Any]:
        return {**self.spec().extractor_spec(), "crop": self.args["crop"]}

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> list[dict[str, float]] | None:
        from bench.metrics.fid import frechet_bootstrap

        return frechet_bootstrap(ctx, self.spec(), self._stats_key(), "fd_dinov2", draws)


class CMMD(_TwoSetMetric):
    """CMMD: Gaussian-kernel MMD between CLIP ViT-L/14-336 embeddings, x 1000 (google-research/cmmd)."""

    name = "cmmd"
    keys = ("cmmd",)
    higher_is_better = {"cmmd": False}
    extractor = "hf_clip"
    options = {**_TwoSetMetric.options, "repo": Option("openai/clip-vit-large-patch14-336", str)}

    def hub_repos(self) -> tuple[str, ...]:
        return (self.args["repo"],)

    def extractor_options(self) -> dict[str, Any]:
        return {"repo": self.args["repo"], "resize": "cmmd"}

    def compute(self, ctx: MetricContext) -> MetricResult:
        gen, ref = self.features(ctx)
        return self.result(cmmd(gen, ref), gen, ref, features=f"CLIP {self.args['repo']} image embeddings, "
                           "L2-normalised", sigma=CMMD_SIGMA, scale=CMMD_SCALE,
                           estimator="biased (diagonals included), as google-research/cmmd")

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> list[dict[str, float]]:
        """All replicates in one pass over the kernel matrices (the interval's batch contract): with counts w of
        the rows a replicate keeps (s = sum w), mean K_xx = w' K_xx w / s^2 and mean K_xy = w' (K_xy 1) / (s m),
        K_yy fixed."""
        gen, ref = (np.asarray(a, np.float64) for a in self.features(ctx))
        n, gamma = len(gen), 1.0 / (2.0 * CMMD_SIGMA**2)
        counts = np.stack([np.bincount(idx, minlength=n) for idx, _ in draws], axis=1).astype(np.float64)
        kept = counts.sum(0)
        kyy = _kernel_mean(ref, ref, gamma)
        rows_xy = _kernel_apply(gen, ref, gamma, np.ones((len(ref), 1)))[:, 0] / len(ref)
        kxx = (counts * _kernel_apply(gen, gen, gamma, counts)).sum(0) / kept**2
        kxy = counts.T @ rows_xy / kept
        return [{"cmmd": float(CMMD_SCALE * (a + kyy - 2.0 * b))} for a, b in zip(kxx, kxy, strict=True)]
