"""The evaluation transform (centre crop + Lanczos 256) is settable per suite and recorded in the protocol."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.errors import BenchError
from bench.metrics.preprocess import Preprocess
from bench.suites.smoke import SmokeSuite


def test_default_is_centre_crop_lanczos_256():
    img = np.random.default_rng(0).integers(0, 256, (60, 100, 3), dtype=np.uint8)
    out = SmokeSuite().preprocess()(img)
    # independent reference: crop the central 60x60 square, then PIL Lanczos to 256
    expected = np.asarray(Image.fromarray(img[:, 20:80]).resize((256, 256), Image.Resampling.LANCZOS))
    assert np.array_equal(out, expected)


def test_size_crop_and_filter_are_suite_options():
    suite = SmokeSuite(eval_size=128, eval_crop=False, eval_resample="bicubic")
    assert suite.preprocess() == Preprocess(size=128, center_crop=False, resample="bicubic")
    img = np.zeros((60, 100, 3), dtype=np.uint8)
    assert suite.preprocess()(img).shape == (128, 128, 3)
    assert suite.protocol()["preprocess"] == {"size": 128, "center_crop": False, "resample": "bicubic"}
    assert suite.preprocess_deviations() == [
        "evaluation transform size=128 instead of 256",
        "evaluation transform center_crop=False instead of True",
        "evaluation transform resample=bicubic instead of lanczos",
    ]
    assert SmokeSuite(eval_size=0).preprocess().size is None


def test_bad_transform_options_are_rejected():
    with pytest.raises(BenchError, match="one of"):
        SmokeSuite(eval_resample="cubic")
    with pytest.raises(BenchError, match="positive"):
        SmokeSuite(eval_size=-3).preprocess()
