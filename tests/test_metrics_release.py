"""The release-protocol metric variants: TF1 bilinear resize and the inception_tf1 extractor, the ADM evaluator's
float16 precision/recall, and torch-fidelity's Inception Score."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_thread")


# -- TF1 bilinear resize ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(256, 256), (64, 100), (300, 299), (17, 5), (299, 299)])
def test_tf1_resize_is_torch_fidelitys_bit_for_bit(shape):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    from bench.metrics.inception_tf import resize_bilinear_tf1

    img = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = resize_bilinear_tf1(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert ours.dtype == np.float32 and ours.shape == (299, 299, 3)
    assert np.array_equal(ours, theirs[0].permute(1, 2, 0).numpy())


def test_inception_tf1_extractor_channels_and_spec():
    from bench.metrics.extractors import build_extractor
    from bench.metrics.inception_tf import resize_bilinear_tf1

    rgb = build_extractor({"kind": "inception_tf1", "weights": "random", "seed": 0, "channels": "rgb"})
    bgr = build_extractor({"kind": "inception_tf1", "weights": "random", "seed": 0, "channels": "bgr"})
    clean = build_extractor({"kind": "inception", "weights": "random", "seed": 0})
    assert len({rgb.key(), bgr.key(), clean.key()}) == 3, "each variant caches its own features"
    img = np.random.default_rng(1).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    bgr._model = rgb.model  # the same seeded network: build it once
    assert np.array_equal(bgr.prepare(img[0]), resize_bilinear_tf1(img[0][..., ::-1]))
    f_bgr = bgr.image_features(img)
    assert f_bgr.shape == (2, 2048)
    np.testing.assert_array_equal(f_bgr, rgb.image_features(img[..., ::-1].copy()))
    assert not np.allclose(f_bgr, rgb.image_features(img)), "the channel order reaches the network"


# -- float16 precision/recall (ADM evaluator) ---------------------------------------------------------------------
def _np_block(u, v):
    """The ADM evaluator's distance block, in numpy float16: float16 squares summed (float32 accumulator), a
    float16 product matrix (float32 accumulator), the combination in float16, float32 when anything overflows."""
    u16, v16 = u.astype(np.float32).astype(np.float16), v.astype(np.float32).astype(np.float16)
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        nu = (u16 * u16).astype(np.float32).sum(1).astype(np.float16)
        nv = (v16 * v16).astype(np.float32).sum(1).astype(np.float16)
        p = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
        d = np.maximum(nu[:, None] - np.float16(2) * p + nv[None, :], np.float16(0))
    if np.isfinite(d).all():
        return d.astype(np.float32)
    u32, v32 = u.astype(np.float32), v.astype(np.float32)
    return np.maximum((u32 * u32).sum(1)[:, None] - 2 * (u32 @ v32.T) + (v32 * v32).sum(1)[None], 0)


def _np_adm(real, fake, k, block):
    def radii(x):
        out = np.empty(len(x), np.float32)
        for i in range(0, len(x), block):
            row = np.concatenate([_np_block(x[i:i + block], x[j:j + block]) for j in range(0, len(x), block)], 1)
            out[i:i + block] = np.partition(row, k, axis=1)[:, k]  # position k, the self distance included
        return out

    r_rad, f_rad = radii(real), radii(fake)
    prec, rec = np.zeros(len(fake), bool), np.zeros(len(real), bool)
    for i in range(0, len(real), block):
        for j in range(0, len(fake), block):
            d = _np_block(real[i:i + block], fake[j:j + block])
            rec[i:i + block] |= (d <= f_rad[j:j + block][None]).any(1)
            prec[j:j + block] |= (d <= r_rad[i:i + block][:, None]).any(0)
    return prec, rec


@pytest.mark.parametrize(("scale", "block"), [(0.5, 10_000), (0.5, 37), (40.0, 50)],
                         ids=["one-block", "many-blocks", "overflow"])
def test_fp16_adm_matches_a_numpy_float16_reimplementation(scale, block):
    from bench.metrics.knn_adm import adm_precision_recall_masks

    rng = np.random.default_rng(int(scale * 10) + block)
    real = np.abs(rng.normal(0, scale, (150, 64)))
    fake = np.abs(rng.normal(0, scale, (130, 64))) * 1.1
    if scale > 1:  # some blocks overflow float16, others not
        real[:40] /= 100.0
        fake[:40] /= 100.0
    prec, rec = adm_precision_recall_masks(real, fake, 3, block=block)
    want_prec, want_rec = _np_adm(real, fake, 3, block)
    np.testing.assert_array_equal(prec, want_prec)
    np.testing.assert_array_equal(rec, want_rec)
    assert 0 < prec.mean() < 1 and 0 < rec.mean() < 1


def test_fp16_distances_can_decide_differently_from_exact_ones():
    """Float16 rounding moves decisions near a radius: on features with a large common offset (small
    differences on top of big norms, like pool_3 features) the two kinds of arithmetic disagree."""
    from bench.metrics.knn_adm import adm_precision_recall
    from bench.metrics.knn_exact import precision_recall

    rng = np.random.default_rng(3)
    real = 2.0 + rng.normal(0, 0.05, (120, 32))
    fake = 2.0 + rng.normal(0, 0.05, (120, 32)) * 1.2
    assert adm_precision_recall(real, fake) != precision_recall(real, fake)


def test_precision_recall_metric_options_pick_features_and_distances():
    from bench import plugins
    from bench.metrics.knn_adm import adm_precision_recall
    from bench.metrics.knn_exact import precision_recall

    rng = np.random.default_rng(0)
    feats = {"reference": np.abs(rng.normal(0, 1, (60, 16))), "generated": np.abs(rng.normal(0, 1.2, (50, 16)))}
    specs = []

    class Ctx:
        device = "cpu"

        def image_features(self, spec, which):
            specs.append(spec.extractor_spec())
            return feats[which]

    entry = plugins.current().metrics.get("precision_recall")
    adm = entry.build(features="inception_tf1", channels="bgr", distances="fp16-adm").compute(Ctx())
    assert specs[-1] == {"kind": "inception_tf1", "weights": "pretrained", "seed": 0, "channels": "bgr"}
    assert adm.values == adm_precision_recall(feats["reference"], feats["generated"])
    assert adm.info["distances"] == "fp16-adm"
    exact = entry.build().compute(Ctx())
    assert specs[-1] == {"kind": "inception", "weights": "pretrained", "seed": 0}
    assert exact.values == precision_recall(feats["reference"], feats["generated"])


# -- Inception Score ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [True, False])
def test_inception_score_is_torch_fidelitys(shuffle):
    from torch_fidelity.metric_isc import isc_features_to_metric

    from bench.metrics.inception_tf import inception_score_torch_fidelity

    logits = torch.from_numpy(np.random.default_rng(0).normal(0, 3, (103, 1008))).float()
    theirs = isc_features_to_metric(logits, splits=10, shuffle=shuffle, rng_seed=2020)
    ours = inception_score_torch_fidelity(logits.numpy(), 10, 2020 if shuffle else None)
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
    assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9)
    other = inception_score_torch_fidelity(logits.numpy(), 10, None if shuffle else 2020)
    assert other[1] != pytest.approx(ours[1], rel=1e-6), "the shuffle changes the splits"


def test_inception_score_variant_uses_the_tf1_features():
    from bench import plugins
    from bench.metrics.extractors import build_extractor
    from bench.metrics.inception_tf import inception_logits, inception_score_torch_fidelity

    metric = plugins.current().metrics.get("inception_score").build(weights="random", variant="torch-fidelity")
    (spec,) = metric.feature_specs()
    assert spec.extractor == "inception_tf1" and spec.options["channels"] == "rgb"
    feats = np.abs(np.random.default_rng(0).normal(0, 1, (40, 2048)))

    class Ctx:
        device = "cpu"

        def image_features(self, spec, which):
            return feats

        def extractor(self, spec):
            return build_extractor(spec)

    result = metric.compute(Ctx())
    want = inception_score_torch_fidelity(inception_logits(build_extractor(spec), feats), 10, 2020)
    assert result.values["inception_score"] == want[0] and result.info["variant"] == "torch-fidelity"
