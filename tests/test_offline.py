"""Attempted downloads fail fast, in one line that names what to fetch, with exit status 2."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.hub_errors import explain_download_failure, load_state_dict


def test_hub_download_offline_is_explained():
    from huggingface_hub import hf_hub_download

    start = time.perf_counter()
    with pytest.raises(BenchError) as err, explain_download_failure("SD-Turbo", "stabilityai/sd-turbo"):
        hf_hub_download("stabilityai/sd-turbo", "model_index.json", cache_dir="/nonexistent-cache")
    assert time.perf_counter() - start < 10
    msg = str(err.value)
    assert "stabilityai/sd-turbo" in msg and "HF_HUB_OFFLINE" in msg and "\n" not in msg


def test_unrelated_errors_pass_through():
    with pytest.raises(ZeroDivisionError), explain_download_failure("x", "y"):
        1 / 0  # noqa: B018


def test_pretrained_metric_network_offline_exits_2(tmp_path):
    """A run that needs real CLIP weights says which ones and stops, leaving finished images in place."""
    err = io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(["run", "--method", "tiny", "--suite", "smoke", "--limit", "2", "--out", str(tmp_path),
                   "--metrics", "clip_score", "--metric-args", "clip_score.weights=pretrained,clip_score.model=ViT-g-14",
                   "--device", "cpu"])
    assert rc == 2
    assert time.perf_counter() - start < 120
    line = err.getvalue().strip().splitlines()[-1]
    assert line.startswith("bench: error: cannot load open_clip ViT-g-14 (laion2b_s12b_b42k)")
    assert len(list((tmp_path / "smoke-tiny" / "images").iterdir())) == 2


def test_checkpoints_load_without_pickled_code(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "a.safetensors"))
    assert torch.equal(load_state_dict(tmp_path / "a.safetensors")["w"], torch.ones(2))
    torch.save({"state_dict": {"w": torch.zeros(3)}}, tmp_path / "b.pt")
    assert torch.equal(load_state_dict(tmp_path / "b.pt")["w"], torch.zeros(3))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "c.pt")
    with pytest.raises(BenchError, match="safetensors"):
        load_state_dict(tmp_path / "c.pt")
    with pytest.raises(BenchError, match="does not exist"):
        load_state_dict(tmp_path / "missing.pt")


def test_unknown_open_clip_tag_is_a_clear_error(tmp_path):
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(["run", "--method", "tiny", "--suite", "smoke", "--limit", "2", "--out", str(tmp_path),
                   "--metrics", "clip_score", "--metric-args", "clip_score.weights=pretrained,clip_score.pretrained=laion2b",
                   "--device", "cpu"])
    assert rc == 2
    assert "unknown open_clip weights tag for ViT-B-32 'laion2b'" in err.getvalue()
