"""Precision/recall and density/coverage against independent references: a brute-force float64 computation,
torch-fidelity's and prdc's implementations; exactness near the radius, tiling, devices, inputs."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from bench.metrics.knn_exact import (
    density_coverage,
    kth_neighbour_radii,
    precision_recall,
    precision_recall_masks,
)


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Every squared distance by explicit differences in float64, then the definitions word for word."""
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)

    def sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    rr, ff, rf = sq(r, r), sq(f, f), sq(r, f)
    np.fill_diagonal(rr, np.inf)
    np.fill_diagonal(ff, np.inf)
    r_rad, f_rad = np.sort(rr, 1)[:, k - 1], np.sort(ff, 1)[:, k - 1]
    return {
        "fake_in_real": (rf <= r_rad[:, None]).any(0),
        "real_in_fake": (rf <= f_rad[None, :]).any(1),
        "r_rad": r_rad,
        "density": (rf < r_rad[:, None]).sum() / (k * len(f)),
        "coverage": (rf.min(1) < r_rad).mean(),
    }


def clustered(n: int, d: int, clusters: int, seed: int, spread: float = 1.0) -> np.ndarray:
    """Non-negative clustered features (like post-ReLU network features)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(size=(16, d)) * 0.6
    z = rng.integers(0, clusters, n)
    return np.maximum(centres[z] + rng.normal(size=(n, d)) * spread, 0.0)


CASES = [(120, 90, 8), (257, 300, 64), (400, 333, 96)]


@pytest.mark.parametrize(("n_real", "n_fake", "dim"), CASES)
def test_decisions_equal_brute_force(n_real, n_fake, dim):
    real = clustered(n_real, dim, 16, 1)
    fake = clustered(n_fake, dim, 11, 2, spread=1.05)
    ref = brute_force(real, fake, 3)
    prec, rec = precision_recall_masks(real, fake, 3)
    np.testing.assert_array_equal(prec, ref["fake_in_real"])
    np.testing.assert_array_equal(rec, ref["real_in_fake"])
    assert 0 < prec.mean() < 1 and 0 < rec.mean() < 1  # decisions both ways
    np.testing.assert_allclose(kth_neighbour_radii(real, 3), ref["r_rad"], rtol=1e-12)
    dc = density_coverage(real, fake, 3)
    assert dc["density"] == pytest.approx(ref["density"], rel=1e-12)
    assert dc["coverage"] == ref["coverage"]


@pytest.mark.parametrize(("n_real", "n_fake", "blocks"), [(24, 19, (1, 5)), (300, 260, (64, 299))])
def test_tiles_do_not_change_any_decision(n_real, n_fake, blocks):
    real, fake = clustered(n_real, 32, 16, 3), clustered(n_fake, 32, 12, 4)
    whole = precision_recall_masks(real, fake, 3, block=4096)
    dc = density_coverage(real, fake, 5, block=4096)
    for block in blocks:
        got = precision_recall_masks(real, fake, 3, block=block)
        np.testing.assert_array_equal(got[0], whole[0])
        np.testing.assert_array_equal(got[1], whole[1])
        assert density_coverage(real, fake, 5, block=block) == dc


def test_exact_at_the_radius_boundary():
    """Integer features make many distances tie exactly with a radius: <= for precision/recall, < for
    density/coverage, decided exactly although the float32 pass cannot tell them apart."""
    rng = np.random.default_rng(5)
    real = rng.integers(0, 3, size=(150, 6)).astype(np.float32) * 1000 + 12345.0  # large offset: float32 noise
    fake = rng.integers(0, 3, size=(120, 6)).astype(np.float32) * 1000 + 12345.0
    ref = brute_force(real, fake, 3)
    prec, rec = precision_recall_masks(real, fake, 3, block=50)
    np.testing.assert_array_equal(prec, ref["fake_in_real"])
    np.testing.assert_array_equal(rec, ref["real_in_fake"])
    dc = density_coverage(real, fake, 3, block=50)
    assert dc["density"] == pytest.approx(ref["density"], rel=1e-12) and dc["coverage"] == ref["coverage"]
    # ties really occur here: strict and non-strict comparisons differ
    rf = ((real[:, None, :].astype(np.float64) - fake[None].astype(np.float64)) ** 2).sum(-1)
    assert ((rf == ref["r_rad"][:, None]).any())


def test_agrees_with_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full, calculate_precision_recall_part

    real, fake = clustered(350, 48, 16, 6), clustered(280, 48, 10, 7)
    ours = precision_recall(real, fake, 3)
    # torch-fidelity's convention: features_1 is generated, features_2 is real
    full = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), 3, 10000)
    part = calculate_precision_recall_part(torch.from_numpy(fake), torch.from_numpy(real), 3, 128)
    counts = (round(ours["precision"] * len(fake)), round(ours["recall"] * len(real)))
    for theirs in (full, part):  # float32 means: compare the counts of samples inside
        assert (round(theirs[0] * len(fake)), round(theirs[1] * len(real))) == counts


def test_agrees_with_prdc():
    """prdc compares with a strict <; on continuous features no distance equals a radius, so its precision and
    recall are ours too, and its density and coverage (strict, as ours) are identical."""
    from prdc import compute_prdc

    real, fake = clustered(330, 40, 16, 8), clustered(300, 40, 9, 9)
    for k in (3, 5):
        with contextlib.redirect_stdout(io.StringIO()):
            ref = compute_prdc(real, fake, k)
        pr, dc = precision_recall(real, fake, k), density_coverage(real, fake, k)
        assert pr["precision"] == ref["precision"] and pr["recall"] == ref["recall"]
        assert dc["density"] == pytest.approx(ref["density"], rel=1e-12) and dc["coverage"] == ref["coverage"]


def test_mode_collapse_gives_high_precision_low_recall():
    rng = np.random.default_rng(10)
    centres = rng.normal(size=(10, 16)) * 20
    real = centres[rng.integers(0, 10, 600)] + rng.normal(size=(600, 16))
    fake = centres[0] + rng.normal(size=(300, 16)) * 0.7  # every sample from one of ten modes
    out = precision_recall(real, fake, 3)
    assert out["precision"] > 0.9 and out["recall"] < 0.2
    dc = density_coverage(real, fake, 5)
    assert dc["coverage"] < 0.2
    same = precision_recall(real, real + 1e-3 * rng.normal(size=real.shape), 3)
    assert same["precision"] > 0.95 and same["recall"] > 0.95


def test_input_types_and_dtypes_give_the_same_decisions():
    real, fake = clustered(200, 24, 16, 11), clustered(180, 24, 16, 12)
    ref = precision_recall_masks(real, fake, 3)
    r32, f32 = real.astype(np.float32), fake.astype(np.float32)
    ref32 = brute_force(r32, f32, 3)
    got32 = precision_recall_masks(torch.from_numpy(r32), torch.from_numpy(f32), 3)
    np.testing.assert_array_equal(got32[0], ref32["fake_in_real"])
    np.testing.assert_array_equal(got32[1], ref32["real_in_fake"])
    got = precision_recall_masks(torch.from_numpy(real), fake.tolist(), 3, device="cpu")
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_gives_the_same_decisions():
    real, fake = clustered(500, 64, 16, 13), clustered(450, 64, 12, 14)
    cpu = precision_recall_masks(real, fake, 3, device="cpu")
    gpu = precision_recall_masks(real, fake, 3, device="cuda")
    np.testing.assert_array_equal(cpu[0], gpu[0])
    np.testing.assert_array_equal(cpu[1], gpu[1])
    assert density_coverage(real, fake, 5, device="cuda") == density_coverage(real, fake, 5, device="cpu")


def test_bad_inputs_are_rejected():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(x[:3], x, 3)
    with pytest.raises(ValueError, match="width"):
        precision_recall(x, np.zeros((10, 5)), 3)
    with pytest.raises(ValueError, match="2-D"):
        precision_recall(np.zeros(10), x, 3)
    with pytest.raises(ValueError, match="NaN"):
        precision_recall(np.full((10, 4), np.nan), x, 3)
    with pytest.raises(ValueError, match="k must be"):
        density_coverage(x, x, 0)


def test_duplicates_and_identical_sets():
    rng = np.random.default_rng(15)
    base = rng.normal(size=(40, 8))
    real = np.concatenate([base, base, base[:10]])  # many exact duplicates: radii of 0
    ref = brute_force(real, base, 3)
    prec, rec = precision_recall_masks(real, base, 3)
    np.testing.assert_array_equal(prec, ref["fake_in_real"])
    np.testing.assert_array_equal(rec, ref["real_in_fake"])
    assert precision_recall(base, base, 3) == {"precision": 1.0, "recall": 1.0}
