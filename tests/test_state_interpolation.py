"""bench.state_interpolation.interpolate_state_dicts against a computation by hand."""

from __future__ import annotations

import pytest
import torch

from bench.errors import BenchError
from bench.state_interpolation import interpolate_state_dicts


def test_interpolation_matches_hand_computation_in_float32_stored_in_a_dtype():
    gen = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(3, 4, generator=gen).half(), "b": torch.randn(4, generator=gen), "n": torch.tensor([7])}
    b = {"w": torch.randn(3, 4, generator=gen), "b": torch.randn(4, generator=gen).bfloat16(), "n": torch.tensor([7])}
    out = interpolate_state_dicts(a, b, 0.3)
    for key in ("w", "b"):
        by_hand = (0.3 * a[key].float() + 0.7 * b[key].float()).to(a[key].dtype)
        assert out[key].dtype == a[key].dtype and torch.equal(out[key], by_hand), key
    assert torch.equal(out["n"], a["n"])
    assert torch.equal(interpolate_state_dicts(a, b, 1.0)["w"], a["w"])
    assert torch.equal(interpolate_state_dicts(a, b, 0.0)["b"], b["b"].float())


def test_mismatches_name_the_first_key():
    a = {"x": torch.zeros(2), "y": torch.zeros(3), "z": torch.zeros(1)}
    with pytest.raises(BenchError, match="'y' only in A"):
        interpolate_state_dicts(a, {"x": torch.zeros(2), "z": torch.zeros(1)}, 0.5)
    with pytest.raises(BenchError, match=r"'y' has shape \(3,\) in A but \(4,\) in B"):
        interpolate_state_dicts(a, {**a, "y": torch.zeros(4), "z": torch.zeros(2)}, 0.5)
    ints = {"i": torch.tensor([1])}
    with pytest.raises(BenchError, match="non-floating tensor 'i'"):
        interpolate_state_dicts(ints, {"i": torch.tensor([2])}, 0.5)
