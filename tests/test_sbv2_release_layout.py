"""``--method sbv2 --method-args weights=DIR`` reads the SBv2 release's checkpoint layout (``DIR/unet_ema``), other
subfolders by option, and ``.bin`` state dicts only when asked to."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from bench.errors import BenchError  # noqa: E402
from bench.sample_noise import batch_noise  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["a photo of a cat", "an oil painting of a lighthouse"]


def make(**args):
    from bench import plugins

    gen = plugins.current().methods.get("sbv2").build(**{k: str(v) for k, v in args.items()})
    gen.load(torch.device("cpu"), torch.float32)
    return gen


def _release_dir(root, seeds=(("unet_ema", 3),), bin_files=False):
    """A release-style checkpoint: DIR/<sub>/config.json + weights, and a card pointing at the tiny base."""
    from methods.components import build_tiny_components
    from methods.sbv2 import write_model_card

    for sub, seed in seeds:
        unet = build_tiny_components(seed=seed).unet
        if bin_files:
            (root / sub).mkdir(parents=True)
            unet.save_config(root / sub)
            torch.save(unet.state_dict(), root / sub / "diffusion_pytorch_model.bin")
        else:
            unet.save_pretrained(root / sub, safe_serialization=True)
    write_model_card(root, base="tiny", base_seed=3)
    return root


def _images(gen):
    return gen.generate(batch_noise(0, [0, 1], gen.noise_shape), PROMPTS)


def test_unet_ema_is_read_by_default_and_other_subfolders_by_option(tmp_path):
    root = _release_dir(tmp_path, seeds=(("unet_ema", 3), ("unet", 5)))
    gen = make(weights=root)
    reference = _images(make(size="tiny", weights="random", weights_seed=3))  # the same networks, seed 3
    torch.testing.assert_close(_images(gen), reference)
    assert gen.describe()["sources"]["unet"]["subfolder"] == "unet_ema"
    other = make(weights=root, subfolder="unet")
    assert other.describe()["sources"]["unet"]["subfolder"] == "unet"
    assert not torch.allclose(_images(other), reference), "subfolder=unet loads the other UNet"
    with pytest.raises(BenchError, match="no file named config.json"):
        make(weights=root, subfolder="none")


def test_bin_state_dict_only_when_asked(tmp_path):
    root = _release_dir(tmp_path, bin_files=True)
    with pytest.raises(BenchError, match="bin_weights=true") as info:
        make(weights=root)
    assert "\n" not in str(info.value)
    gen = make(weights=root, bin_weights="true")
    torch.testing.assert_close(_images(gen), _images(make(size="tiny", weights="random", weights_seed=3)))


def test_missing_subfolder_is_a_one_line_error(tmp_path):
    root = _release_dir(tmp_path)
    with pytest.raises(BenchError, match="no unet/config.json") as info:
        make(weights=root, subfolder="unet")
    assert "\n" not in str(info.value)
