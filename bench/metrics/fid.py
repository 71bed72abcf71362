"""Frechet Inception Distance (clean-fid "clean" protocol), Kernel Inception Distance and Inception Score.

All three read the Inception-v3 pool3 features of the shared feature pass (the same ones precision/recall
uses). Reference statistics (mean and covariance) are cached on disk in the cache directory
(``$BENCH_CACHE_DIR``), under a key made of the extractor spec (network, weights, clean-fid mode) and a digest
of the reference features themselves; those features are cached by the run under the suite's reference
fingerprint and evaluation transform (resolution, crop). Anything that changes the statistics changes the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, Metric, MetricContext, MetricResult, SampleNeeds
from bench.options import Option


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of feature rows, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a 2-D array of at least 2 feature rows, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians, in float64.

    tr (S1 S2)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S1^(1/2) S2 S1^(1/2), which shares its spectrum with S1 S2; this stays real and finite for
    singular covariances (no regularising offset is needed).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    root1 = _psd_sqrt(s1)
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_from_features(a: Any, b: Any) -> float:
    """The Frechet distance between the Gaussians fitted to two feature sets (as ``frechet_distance`` of their
    ``feature_statistics``), computed without D x D matrices: with centred rows scaled by 1/sqrt(n - 1),
    S1 = A^T A and S2 = B^T B, and tr (S1 S2)^(1/2) is the sum of the singular values of A B^T (n_a x n_b).
    Much faster when a set has fewer rows than features."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two 2-D feature arrays of equal width and at least 2 rows, got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca = (a - mu_a) / np.sqrt(len(a) - 1)
    cb = (b - mu_b) / np.sqrt(len(b) - 1)
    nuclear = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + (ca * ca).sum() + (cb * cb).sum() - 2.0 * nuclear)


def kernel_inception_distance(real: Any, fake: Any, num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
    ``num_subsets`` random subsets of size min(n_real, n_fake, max_subset_size) drawn without replacement.
    Returns (mean, standard deviation over subsets)."""
    x_all, y_all = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    d = x_all.shape[1]
    m = min(len(x_all), len(y_all), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    off = ~np.eye(m, dtype=bool)
    for s in range(num_subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        values[s] = (kxx[off].sum() + kyy[off].sum()) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m)
    return float(values.mean()), float(values.std())


def inception_score(probabilities: Any, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))), per split of consecutive samples (boundaries i * N // splits);
    returns (mean, standard deviation over splits)."""
    p = np.asarray(probabilities, np.float64)
    n = len(p)
    if n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} samples, got {n}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def reference_statistics(features: np.ndarray, extractor_spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of reference features, cached on disk (see the module docstring for the key); a
    damaged or changed cache file is recomputed (:mod:`bench.feature_files`)."""
    from bench.cache_dir import cache_dir
    from bench.feature_files import load_npz, save_npz

    x = np.ascontiguousarray(features, dtype=np.float64)
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(extractor_spec, sort_keys=True, default=str).encode())
    h.update(repr(x.shape).encode())
    h.update(memoryview(x).cast("B"))
    key = h.hexdigest()
    path = cache_dir() / "fid-stats" / f"{extractor_spec.get('kind', 'features')}-{key}.npz"
    cached = load_npz(path, key)
    if cached is not None and "mu" in cached and "sigma" in cached:
        return cached["mu"], cached["sigma"]
    mu, sigma = feature_statistics(x)
    save_npz(path, inputs=key, mu=mu, sigma=sigma, n=np.array(len(x)),
             spec=np.array(json.dumps(extractor_spec, default=str)))
    return mu, sigma


#: A Frechet distance fits a covariance to each set: two samples of each at least.
FRECHET_NEEDS = SampleNeeds(2, 2, "a covariance of each set")


class FrechetReference:
    """A reference Gaussian with its covariance's square root computed once: :meth:`distance` to another
    Gaussian then needs one symmetric eigenvalue problem (what makes interval replicates cheap)."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        self.mu, self.sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
        self.root = _psd_sqrt(self.sigma)

    def distance(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        """As :func:`frechet_distance` (``mu``, ``sigma``; this reference)."""
        eig = np.linalg.eigvalsh(self.root @ np.asarray(sigma, np.float64) @ self.root)
        diff = np.asarray(mu, np.float64) - self.mu
        return float(diff @ diff + np.trace(sigma) + np.trace(self.sigma) - 2.0 * np.sqrt(np.clip(eig, 0, None)).sum())


    def resampled_distances(self, gen: np.ndarray, draws: Sequence[np.ndarray], device: Any = None) -> list[float]:
        """The distance of the Gaussian fitted to ``gen[idx]`` for each ``idx`` in ``draws`` (rows kept by a
        jackknife replicate, or any multiset of rows), in float64 with torch on ``device``. A draw is a count w
        per row; its mean and (unbiased) covariance are downdated from the whole set's sums over the rows whose
        count is not 1 (a left-out group), so a replicate costs the group's rows and one eigenvalue problem:
        the same numbers as :func:`feature_statistics` of ``gen[idx]``, up to float64 rounding."""
        import torch

        dev = torch.device(device) if device is not None else torch.device("cpu")
        x = torch.as_tensor(np.asarray(gen, np.float64), device=dev)
        centre = x.mean(0)
        x = x - centre  # sums of centred rows keep the downdate well conditioned
        root = torch.as_tensor(self.root, device=dev)
        shift = centre - torch.as_tensor(self.mu, device=dev)
        trace_ref = float(np.trace(self.sigma))
        n = x.shape[0]
        total_sq, total = x.T @ x, x.sum(0)
        out = []
        for idx in draws:
            w = torch.bincount(torch.as_tensor(np.asarray(idx), device=dev), minlength=n).to(torch.float64)
            changed = torch.nonzero(w != 1).flatten()
            dw, rows = w[changed] - 1.0, x[changed]
            m = float(w.sum())
            s = total + dw @ rows
            mu = s / m
            sigma = (total_sq + (rows.T * dw) @ rows - m * torch.outer(mu, mu)) / (m - 1)
            eig = torch.linalg.eigvalsh(root @ sigma @ root)
            diff = mu + shift
            value = diff @ diff + torch.trace(sigma) + trace_ref - 2.0 * eig.clamp_min(0).sqrt().sum()
            out.append(float(value))
        return out


_REFERENCE: dict[str, Any] = {}


def reference_gaussian(ref: np.ndarray, extractor_spec: dict[str, Any]) -> FrechetReference:
    """The :class:`FrechetReference` of reference features: statistics cached on disk
    (:func:`reference_statistics`) and, with their square root, in memory for the same array object."""
    memo = _REFERENCE.get("entry")
    if memo is None or memo[0] is not ref or memo[1] != extractor_spec:
        memo = (ref, dict(extractor_spec), FrechetReference(*reference_statistics(ref, extractor_spec)))
        _REFERENCE["entry"] = memo
    return memo[2]


def few_samples(gen: np.ndarray, ref: np.ndarray) -> bool:
    """Whether a set has at most half as many rows as features: then the n x n form is exact and far cheaper."""
    return min(len(gen), len(ref)) * 2 <= gen.shape[1]


def frechet_bootstrap(ctx: MetricContext, spec: FeatureSpec, stats_key: dict[str, Any], key: str,
                      draws: Sequence[Any]) -> list[dict[str, float]] | None:
    """Interval replicates of a Frechet distance (result ``key``) against the fixed reference Gaussian, all on
    the run's device (:meth:`FrechetReference.resampled_distances`); None with few samples (the engine then
    recomputes each replicate). ``stats_key`` keys the cached reference statistics."""
    gen, ref = ctx.image_features(spec, "generated"), ctx.image_features(spec, "reference")
    if few_samples(gen, ref):
        return None
    values = reference_gaussian(ref, stats_key).resampled_distances(gen, [idx for idx, _groups in draws],
                                                                    ctx.device)
    return [{key: v} for v in values]


def frechet_to_reference(gen: np.ndarray, ref: np.ndarray, extractor_spec: dict[str, Any]) -> float:
    """Frechet distance between generated and reference features; repeated calls against one reference
    (interval replicates) cost one covariance and one eigenproblem (:func:`reference_gaussian`)."""
    if few_samples(gen, ref):
        return frechet_distance_from_features(gen, ref)
    return reference_gaussian(ref, extractor_spec).distance(*feature_statistics(gen))


class _InceptionMetric(Metric):
    options = {"weights": WEIGHTS_OPTION, "seed": Option(0, int, help="seed of random weights", minimum=0)}

    def spec(self) -> FeatureSpec:
        return FeatureSpec("inception", {"weights": self.args["weights"], "seed": self.args["seed"]})

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]


class FID(_InceptionMetric):
    """FID between generated and reference images on Inception-v3 pool3 features (clean-fid, "clean")."""

    name = "fid"
    keys = ("fid",)
    higher_is_better = {"fid": False}

    def min_samples(self) -> SampleNeeds:
        return FRECHET_NEEDS

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.spec()
        gen = ctx.image_features(spec, "generated")
        ref = ctx.image_features(spec, "reference")
        value = frechet_to_reference(gen, ref, spec.extractor_spec())
        return MetricResult({"fid": value}, self._info(features="inception-v3 pool3 (clean-fid, clean mode)",
                                                      n_generated=len(gen), n_reference=len(ref)))

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> list[dict[str, float]] | None:
        spec = self.spec()
        return frechet_bootstrap(ctx, spec, spec.extractor_spec(), "fid", draws)


class KID(_InceptionMetric):
    """Kernel Inception Distance on the same Inception features as FID (mean over subsets; std in info)."""

    name = "kid"
    keys = ("kid",)
    higher_is_better = {"kid": False}
    bootstrap = False  # reports its own spread over subsets / splits
    options = {**_InceptionMetric.options, "subsets": Option(100, int, minimum=1),
               "subset_size": Option(1000, int, minimum=2),
               "subset_seed": Option(0, int, help="seed of the subset draws", minimum=0)}

    def min_samples(self) -> SampleNeeds:
        return SampleNeeds(2, 2)

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.spec()
        gen = ctx.image_features(spec, "generated")
        ref = ctx.image_features(spec, "reference")
        mean, std = kernel_inception_distance(ref, gen, self.args["subsets"], self.args["subset_size"],
                                              self.args["subset_seed"])
        return MetricResult({"kid": mean}, self._info(kid_std=std, subset_size=min(len(gen), len(ref),
                                                                                  self.args["subset_size"]),
                                                      subsets=self.args["subsets"]))


class InceptionScore(_InceptionMetric):
    """Inception Score of the generated images (10 splits; std in info).

    ``variant="bench"``: from the FID feature pass (clean-fid resize), consecutive splits. ``"torch-fidelity"``:
    as ``fidelity --isc`` (what the SBv2 release ran): the graph's TF1 bilinear resize (``inception_tf1``
    features, RGB), samples shuffled with seed 2020, float64 softmax (:mod:`bench.metrics.inception_tf`).
    """

    name = "inception_score"
    keys = ("inception_score",)
    needs_reference = False
    higher_is_better = {"inception_score": True}
    bootstrap = False  # reports its own spread over subsets / splits
    options = {**_InceptionMetric.options, "splits": Option(10, int, minimum=1),
               "variant": Option("bench", str, ("bench", "torch-fidelity"), "bench: FID's features; torch-fidelity: "
                                 "fidelity --isc (TF1 resize, shuffled with seed 2020)")}

    def spec(self) -> FeatureSpec:
        spec = super().spec()
        if self.args["variant"] == "torch-fidelity":
            return FeatureSpec("inception_tf1", {**spec.options, "channels": "rgb"})
        return spec

    def min_samples(self) -> SampleNeeds:
        return SampleNeeds(self.args["splits"], 0, f"splits={self.args['splits']}")

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.spec()
        gen = ctx.image_features(spec, "generated")
        ext = ctx.extractor(spec)
        if self.args["variant"] == "torch-fidelity":
            from bench.metrics.inception_tf import inception_logits, inception_score_torch_fidelity

            mean, std = inception_score_torch_fidelity(inception_logits(ext, gen), self.args["splits"], 2020)
        else:
            mean, std = inception_score(ext.class_probabilities(gen), self.args["splits"])
        return MetricResult({"inception_score": mean}, self._info(inception_score_std=std, splits=self.args["splits"],
                                                                  variant=self.args["variant"]))
