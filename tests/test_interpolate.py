"""slerp / lerp (closed forms and edge cases) and ``python -m bench interpolate`` on the tiny method."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import run_cli
from PIL import Image

from bench.interp import lerp, slerp, steps


def test_slerp_of_orthogonal_unit_vectors_is_the_closed_form_arc():
    a, b = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    for t in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        expected = torch.tensor([[math.cos(t * math.pi / 2), math.sin(t * math.pi / 2), 0.0]])
        assert torch.allclose(slerp(a, b, t), expected, atol=1e-6), t


def test_slerp_of_equal_norm_noises_keeps_the_norm_and_matches_the_textbook_formula():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, 8, 8, generator=g)
    b = torch.randn(3, 4, 8, 8, generator=g)
    b = b / b.flatten(1).norm(dim=1)[:, None, None, None] * a.flatten(1).norm(dim=1)[:, None, None, None]
    for t in (0.3, 0.5, 0.8):
        out = slerp(a, b, t)
        assert torch.allclose(out.flatten(1).norm(dim=1), a.flatten(1).norm(dim=1), rtol=1e-5)
        for i in range(3):  # per sample: sin((1-t)w)/sin(w) a + sin(tw)/sin(w) b
            fa, fb = a[i].flatten().double(), b[i].flatten().double()
            w = torch.arccos(fa @ fb / (fa.norm() * fb.norm()))
            ref = (torch.sin((1 - t) * w) * fa + torch.sin(t * w) * fb) / torch.sin(w)
            assert torch.allclose(out[i].flatten().double(), ref, atol=1e-5)
    # plain averaging of independent noises shrinks them (about 1/sqrt(2) half way); slerp does not
    assert (lerp(a, b, 0.5).flatten(1).norm(dim=1) < 0.9 * a.flatten(1).norm(dim=1)).all()


def test_unequal_norms_interpolate_the_norm_linearly():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    out = slerp(a, b, 0.5)
    assert torch.allclose(out.norm(), torch.tensor(3.0)) and torch.allclose(out[0, 0], out[0, 1])


def test_parallel_antiparallel_and_zero_vectors_fall_back_to_lerp():
    a = torch.tensor([[1.0, 2.0, 3.0]])
    for b in (2.5 * a, a * (1 + 1e-8), -a, -3 * a, torch.zeros_like(a)):
        for t in (0.25, 0.5):
            out = slerp(a, b, t)
            assert torch.isfinite(out).all()
            assert torch.allclose(out, lerp(a, b, t), atol=1e-6), (b, t)
    assert torch.allclose(slerp(a, -a, 0.5), torch.zeros_like(a))  # antiparallel: through the origin, as documented


def test_ends_are_exact_and_samples_are_independent():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    assert torch.equal(lerp(a, b, 0.0), a) and torch.equal(lerp(a, b, 1.0), b)
    both = slerp(a, b, 0.3)
    assert torch.allclose(both[1:], slerp(a[1:], b[1:], 0.3), atol=1e-7)
    b2 = b.clone()
    b2[0] = 3 * a[0]  # sample 0 parallel (lerp), sample 1 not: each sample chooses on its own
    mixed = slerp(a, b2, 0.3)
    assert torch.allclose(mixed[0], lerp(a[:1], b2[:1], 0.3)[0]) and torch.allclose(mixed[1], both[1])


def test_bf16_inputs_are_interpolated_in_float32_and_returned_in_bf16():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 4, 16, generator=g).bfloat16(), torch.randn(2, 4, 16, generator=g).bfloat16()
    out = slerp(a, b, 0.4)
    assert out.dtype == torch.bfloat16 and out.shape == a.shape
    ref = slerp(a.float(), b.float(), 0.4)
    assert torch.allclose(out.float(), ref, rtol=1e-2, atol=1e-2)
    assert torch.equal(out, ref.bfloat16())
    with pytest.raises(ValueError):
        slerp(a, b[:1], 0.5)
    assert steps(3) == [0.0, 0.5, 1.0]


def test_interpolate_command_writes_grid_images_and_record(tmp_path, one_thread):
    from bench.sample_noise import sample_noise

    out = tmp_path / "noise"
    rc, _, err = run_cli("interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "A photo of a dog",
                         "--steps", "3", "--seeds", "0,5", "--out", str(out), "--device", "cpu")
    assert rc == 0, err
    record = json.loads((out / "interpolate.json").read_text())
    assert record["mode"] == "noise" and record["interp"] == "slerp" and record["t"] == [0.0, 0.5, 1.0]
    assert "sample_noise(s, 0)" in record["noise"] and len(record["images"]) == 6
    grid = np.asarray(Image.open(out / "grid.png"))
    h, w = record["grid"]["cell"]
    x0, y0 = record["grid"]["origin"]
    assert x0 > 0 and y0 > 0 and grid.shape[0] >= y0 + 2 * h + 2 and grid.shape[1] >= x0 + 3 * w + 4
    cells = {(s, k): np.asarray(Image.open(out / f"images/seed-{s}-step-{k}.png")) for s in (0, 5) for k in range(3)}
    assert np.array_equal(grid[y0:y0 + h, x0:x0 + w], cells[(0, 0)])
    assert np.array_equal(grid[y0 + h + 2:y0 + 2 * h + 2, x0 + 2 * (w + 2):x0 + 3 * w + 4], cells[(5, 2)])
    # labelled: text above the images (what, ends, prompt, t of each column; the random-weights warning in red)
    # and at the left of each row (its seed)
    header, left = grid[:y0], grid[y0:, :x0]
    assert (header.min(axis=2) < 100).sum() > 200 and (left.min(axis=2) < 100).sum() > 20
    red = (header[..., 0] > 120) & (header[..., 1] < 60) & (header[..., 2] < 60)
    assert record["weights"] == "random" and red.sum() > 50
    from bench.interp_grid import title_lines

    lines = title_lines(record)
    assert "A (t = 0) = sample 0's noise" in lines[0] and "A photo of a dog" in lines[1]
    assert not np.array_equal(cells[(0, 0)], cells[(0, 2)])
    # the ends are the noises of samples 0 and 1 of a run with that seed
    from methods.tiny import TinyGenerator

    gen = TinyGenerator()
    gen.load("cpu", torch.float32)
    with torch.no_grad():
        ends = torch.stack([sample_noise(0, 0, gen.noise_shape), sample_noise(0, 0, gen.noise_shape),
                            sample_noise(0, 1, gen.noise_shape)])
        images = gen.generate(ends, ["A photo of a dog"] * 3)
    from bench.images import to_uint8

    expected = to_uint8(images)
    assert np.abs(expected[2].astype(int) - cells[(0, 2)].astype(int)).max() <= 1
    assert np.abs(expected[0].astype(int) - cells[(0, 0)].astype(int)).max() <= 1

    rc, _, err = run_cli("interpolate", "--method", "tiny", "--mode", "prompt", "--prompt", "a dog", "--prompt-b",
                         "a cat", "--steps", "2", "--interp", "lerp", "--out", str(tmp_path / "p"), "--device", "cpu")
    assert rc == 0, err
    assert json.loads((tmp_path / "p" / "interpolate.json").read_text())["interp"] == "lerp"
    for argv in (["--mode", "prompt"], ["--mode", "noise", "--steps", "1"], ["--mode", "noise", "--seeds", "1,1"]):
        rc, _, err = run_cli("interpolate", "--method", "tiny", "--prompt", "x", "--out", str(tmp_path / "bad"),
                             *argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
    rc, _, err = run_cli("interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "x", "--out", str(out))
    assert rc == 2 and "holds an earlier interpolation" in err


def test_report_collects_interpolation_grids(tmp_path, one_thread):
    folder = tmp_path / "interp" / "noise"
    rc, _, err = run_cli("interpolate", "--method", "tiny", "--mode", "noise", "--prompt", "A photo of a dog",
                         "--steps", "3", "--seeds", "0,5", "--out", str(folder), "--device", "cpu")
    assert rc == 0, err
    (tmp_path / "interp" / "broken").mkdir()
    (tmp_path / "interp" / "broken" / "interpolate.json").write_text('{"kind": "interpolate"}')
    rc, out, err = run_cli("report", "--runs", str(tmp_path / "interp"), "--out", str(tmp_path / "rep"))
    assert rc == 0, err
    assert "broken" in err and "not a `bench interpolate` record" in err  # one warning, the rest is reported
    copied = tmp_path / "rep" / "interpolation-1.png"
    assert copied.read_bytes() == (folder / "grid.png").read_bytes()
    page = (tmp_path / "rep" / "index.html").read_text()
    section = page.split("<h2>Interpolations (Figs. 13 and 14)</h2>")[1].split("<h2>")[0]
    assert "Interpolation 1: tiny, noise (Fig. 13)" in section and "data:image/png;base64," in section
    assert "rows: seeds 0, 5; columns: t = 0.00, 0.50, 1.00" in section and "Weights: random" in section
