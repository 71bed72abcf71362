"""The Inception-v3 path of TensorFlow-1 era evaluators: the 2015-12-05 graph's own bilinear resize to 299.

Both the guided-diffusion (ADM) evaluator, which the SBv2 release used for precision/recall, and torch-fidelity,
which it used for the Inception Score, feed the 2015-12-05 Inception graph images of any size and let the graph
resize them with TF1's ``ResizeBilinear`` (``align_corners=False``, no half-pixel centres: source coordinate =
destination index x in_size / out_size). :func:`resize_bilinear_tf1` computes that resize in float32 with the
operations torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` uses (bit-identical on CPUs).

:class:`InceptionTF1Extractor` (kind ``inception_tf1``): pool_3 features (2048-d) of clean-fid's copy of the same
2015-12-05 weights after that resize, from RGB images or, with ``channels="bgr"``, from channel-swapped ones
(the ADM evaluator reads PNGs with OpenCV). The remaining difference from the TensorFlow graph is the network's
own float32 arithmetic (PyTorch kernels instead of TensorFlow's).

:func:`inception_score_torch_fidelity`: ``fidelity --isc``'s formula on logits (float64 softmax, 10 splits,
samples shuffled with ``numpy.random.RandomState(2020)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.metrics.extractors import InceptionExtractor

INCEPTION_SIZE = 299


def _axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low and high source indices and float32 weights of the high one, per output index (TF1 rule)."""
    coord = np.arange(out_size, dtype=np.float32) * np.float32(in_size / out_size)
    lo = coord.astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, coord - lo.astype(np.float32)


def resize_bilinear_tf1(image: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """(H, W, C) image -> float32 (size, size, C), TF1 ``ResizeBilinear(align_corners=False)``."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {x.shape}")
    ylo, yhi, dy = _axis(x.shape[0], size)
    xlo, xhi, dx = _axis(x.shape[1], size)
    dx = dx.reshape(1, -1, 1)
    top, bottom = x[ylo], x[yhi]
    t0, t1 = top[:, xlo], top[:, xhi]
    b0, b1 = bottom[:, xlo], bottom[:, xhi]
    upper = t0 + (t1 - t0) * dx
    lower = b0 + (b1 - b0) * dx
    return upper + (lower - upper) * dy.reshape(-1, 1, 1)


class InceptionTF1Extractor(InceptionExtractor):
    """Inception-v3 pool_3 features after TF1's bilinear resize to 299 px; ``channels``: "rgb" or "bgr" (the
    order in which the image's channels reach the network). ``weights="random"``: as ``inception``."""

    kind = "inception_tf1"

    def __init__(self, weights: str = "pretrained", seed: int = 0, channels: str = "rgb") -> None:
        if channels not in ("rgb", "bgr"):
            raise BenchError(f"inception_tf1 channels must be 'rgb' or 'bgr', not {channels!r}")
        super(InceptionExtractor, self).__init__(weights=weights, seed=seed, resize="tf1-bilinear",
                                                 channels=channels)
        self._head: Any = None
        self._net: Any = None

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """float32 (299, 299, 3) in [0, 255]: channels swapped when "bgr", then the TF1 bilinear resize."""
        if self.options["channels"] == "bgr":
            image = image[..., ::-1]
        return resize_bilinear_tf1(image)


def inception_score_torch_fidelity(logits: Any, splits: int = 10, shuffle_seed: int | None = 2020
                                   ) -> tuple[float, float]:
    """torch-fidelity's Inception Score from (N, classes) logits: rows permuted by
    ``RandomState(shuffle_seed).permutation(N)`` (no shuffle when None), float64 softmax and log-softmax,
    ``splits`` consecutive splits with bounds ``i * N // splits``; (mean, standard deviation over splits)."""
    x = np.asarray(logits, np.float64)
    n = len(x)
    if x.ndim != 2 or n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} rows of logits, got "
                         f"shape {x.shape}")
    if shuffle_seed is not None:
        x = x[np.random.RandomState(shuffle_seed).permutation(n)]
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part, log_part = p[i * n // splits : (i + 1) * n // splits], log_p[i * n // splits : (i + 1) * n // splits]
        q = part.mean(axis=0, keepdims=True)
        scores.append(float(np.exp((part * (log_part - np.log(q))).sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def inception_logits(extractor: InceptionExtractor, features: np.ndarray) -> np.ndarray:
    """Logits without the output bias (torch-fidelity's ``logits_unbiased``) from pool_3 features."""
    w = extractor._classifier().double().numpy()
    return np.asarray(features, np.float64) @ w.T
