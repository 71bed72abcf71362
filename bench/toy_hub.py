"""An offline Hugging Face hub cache holding toy-size models under the real hub ids.

Every generator repository the project loads by id (SD-Turbo, SD 2.1-base, SwiftBrush, InstaFlow, SD 1.5 for
the paper's ``diffusers`` row, TAESD, and the one-step field: SDXL base,
SDXL-Turbo, DMD2, SDXL-Lightning, Hyper-SD, LCM-Dreamshaper, FLUX.1-schnell, PixArt-alpha and its DMD student,
SANA-Sprint 1.6B / 0.6B), and every metric network loaded through transformers' ``from_pretrained`` (FD-DINOv2's
backbones, CMMD's CLIP ViT-L/14-336, PickScore and its processor's tokenizer), gets a snapshot in the hub cache's
own layout::

    <cache>/models--<owner>--<name>/blobs/<sha256>          file contents
                                   /refs/main               the snapshot's commit hash
                                   /snapshots/<commit>/...  the repository's files (links to the blobs)

with the file names, sub-folders and config keys of the real repository, toy dimensions (the networks of
:mod:`methods.components`) and seeded random weights. The repositories come from plug-ins, through the
``register_toy_repos`` hook (:mod:`bench.hookspecs`): the built-in ``methods`` plug-in registers the generators'
(:mod:`methods.toy_repos`, :mod:`methods.toy_repos_field`), ``bench.metrics`` the metric networks'
(:mod:`bench.toy_hub_metrics`); this module writes them. Nothing downstream knows it is a toy: ``snapshot_download``,
``hf_hub_download``, ``try_to_load_from_cache`` and every ``from_pretrained`` read it exactly as they read a
download, so tests (and a user who wants to try a command offline) walk the same loading code as a real run.

Facts mirrored from the real repositories: SD-Turbo and SwiftBrush are full diffusers pipelines of the SD 2.1
architecture whose text encoder and VAE are SD 2.1-base's (so the toy copies share those weights, and only the
UNets differ); SD-Turbo ships an ``EulerDiscreteScheduler`` with trailing timesteps, SD 2.1-base a PLMS-only
``PNDMScheduler``; InstaFlow and SD 1.5 are SD 1.5 pipelines (quick-GELU text encoder, ``<|endoftext|>`` padding)
with a safety checker and its image processor, which the project never loads; TAESD is a bare ``AutoencoderTiny`` at the repository root. The tokenizer
files are the CLIP BPE vocabulary that open_clip ships, written as ``vocab.json`` + ``merges.txt``.

Not in it: networks whose architecture comes from code rather than from the repository's config (open_clip's
ViT-g-14 for the CLIP score and ViT-H-14 for HPS, ImageReward's BLIP, clean-fid's Inception file, which is not
on the hub): a toy checkpoint cannot load into them, so runs on the toy hub give those metrics
``weights=random``.

Build one from the command line (``--cache`` defaults to ``$HF_HUB_CACHE``)::

    python -m bench.toy_hub --cache /tmp/toy-hub
    HF_HUB_CACHE=/tmp/toy-hub HF_HUB_OFFLINE=1 python -m bench run --method sd-turbo --suite smoke --limit 4

Every image and number such a run produces comes from random toy weights and says so (``weights`` is recorded
as ``"toy-hub"`` in each snapshot's ``bench_toy_hub.json``; results are never comparable to published ones).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.hub_cache import MARKER, write_snapshot

SD_TURBO = "stabilityai/sd-turbo"
SD21_BASE = "stabilityai/stable-diffusion-2-1-base"
SWIFTBRUSH = "thuanz123/swiftbrush"
INSTAFLOW = "XCLIU/instaflow_0_9B_from_sd_1_5"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
#: Metric networks the project loads with transformers' ``from_pretrained`` (which reads their configs, so toy
#: sizes load): FD-DINOv2's backbones, CMMD's CLIP, PickScore and the tokenizer of its processor.
DINOV2 = ("facebook/dinov2-small", "facebook/dinov2-base", "facebook/dinov2-large", "facebook/dinov2-giant")
CMMD_CLIP = "openai/clip-vit-large-patch14-336"
PICKSCORE = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
TAESD = "madebyollin/taesd"
SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_TURBO = "stabilityai/sdxl-turbo"
DMD2 = "tianweiy/DMD2"
SDXL_LIGHTNING = "ByteDance/SDXL-Lightning"
HYPER_SD = "ByteDance/Hyper-SD"
LCM_DREAMSHAPER = "SimianLuo/LCM_Dreamshaper_v7"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"
PIXART_BASE = "PixArt-alpha/PixArt-XL-2-1024-MS"
PIXART_DMD = "PixArt-alpha/PixArt-Alpha-DMD-XL-2-512x512"
SANA_SPRINT = "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers"
SANA_SPRINT_SMALL = "Efficient-Large-Model/Sana_Sprint_0.6B_1024px_diffusers"
_PIXART_BETAS: dict[str, Any] = {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                                 "num_train_timesteps": 1000, "prediction_type": "epsilon", "trained_betas": None}
_SANA_SPRINT_SCHEDULER: dict[str, Any] = {"_class_name": "SCMScheduler", "num_train_timesteps": 1000,
                                          "prediction_type": "trigflow", "sigma_data": 0.5}

_SCHEDULER_COMMON: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
#: Scheduler configs as the real repositories ship them (class and keys).
SCHEDULERS: dict[str, dict[str, Any]] = {
    SD_TURBO: {"_class_name": "EulerDiscreteScheduler", **_SCHEDULER_COMMON, "interpolation_type": "linear",
               "timestep_spacing": "trailing", "use_karras_sigmas": False},
    SD21_BASE: {"_class_name": "PNDMScheduler", **_SCHEDULER_COMMON},
    SWIFTBRUSH: {"_class_name": "DDPMScheduler", **_SCHEDULER_COMMON, "variance_type": "fixed_small"},
    INSTAFLOW: {"_class_name": "PNDMScheduler", **_SCHEDULER_COMMON},
    SD15: {"_class_name": "PNDMScheduler", **_SCHEDULER_COMMON},
    SDXL_BASE: {"_class_name": "EulerDiscreteScheduler", **_SCHEDULER_COMMON, "interpolation_type": "linear",
                "sample_max_value": 1.0, "timestep_spacing": "leading", "use_karras_sigmas": False},
    SDXL_TURBO: {"_class_name": "EulerAncestralDiscreteScheduler", **_SCHEDULER_COMMON,
                 "timestep_spacing": "trailing"},
    LCM_DREAMSHAPER: {"_class_name": "LCMScheduler", **_SCHEDULER_COMMON, "clip_sample_range": 1.0,
                      "dynamic_thresholding_ratio": 0.995, "original_inference_steps": 50,
                      "rescale_betas_zero_snr": False, "sample_max_value": 1.0, "set_alpha_to_one": True,
                      "thresholding": False, "timestep_scaling": 10.0, "timestep_spacing": "leading"},
    FLUX_SCHNELL: {"_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
                   "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 1.0,
                   "use_dynamic_shifting": False},
    PIXART_BASE: {"_class_name": "DPMSolverMultistepScheduler", **_PIXART_BETAS, "algorithm_type": "dpmsolver++",
                  "solver_order": 2, "solver_type": "midpoint", "lower_order_final": True, "steps_offset": 0,
                  "timestep_spacing": "linspace"},
    PIXART_DMD: {"_class_name": "DDPMScheduler", **_PIXART_BETAS, "clip_sample": False, "steps_offset": 0,
                 "variance_type": "fixed_small"},
    SANA_SPRINT: _SANA_SPRINT_SCHEDULER,
    SANA_SPRINT_SMALL: _SANA_SPRINT_SCHEDULER,
}


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


# -- repository contents ---------------------------------------------------------------------------------
def clip_tokenizer_files(pad_token: str) -> dict[str, bytes]:
    """``tokenizer/`` of an SD pipeline (CLIPTokenizer) from the CLIP BPE vocabulary open_clip ships.

    ``vocab.json`` maps the byte-level symbols, their word-final forms, every merge and the two special tokens
    to ids 0..49407; ``merges.txt`` lists the 48,894 merges in rank order. SD 2.x pads with ``!`` (id 0),
    SD 1.x with ``<|endoftext|>``.
    """
    import gzip

    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    encoder = {token: i for i, token in enumerate(vocab)}
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": pad_token}
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
              "errors": "replace", "add_prefix_space": False, **special}
    return {
        "tokenizer/vocab.json": json.dumps(encoder, ensure_ascii=False).encode("utf-8"),
        "tokenizer/merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode("utf-8"),
        "tokenizer/special_tokens_map.json": json_bytes(special),
        "tokenizer/tokenizer_config.json": json_bytes(config),
    }


def saved_files(module: Any) -> dict[str, bytes]:
    """``save_pretrained`` in safetensors into a temporary folder; its files by name."""
    from transformers.utils import logging as tlogging

    tlogging.disable_progress_bar()  # "Writing model shards" bars for a few kilobytes
    with tempfile.TemporaryDirectory() as tmp:
        module.save_pretrained(tmp, safe_serialization=True)
        return _folder_files(Path(tmp))


def prefixed(prefix: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{prefix}/{k}": v for k, v in files.items()}


def feature_extractor_files() -> dict[str, bytes]:
    from transformers import CLIPImageProcessor

    with tempfile.TemporaryDirectory() as tmp:
        CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(tmp)
        return _folder_files(Path(tmp))


def toy_repos() -> dict[str, Callable[[int], dict[str, bytes]]]:
    """Repo id -> ``files(seed)`` of every repository the plug-ins register through ``register_toy_repos``, in
    registration order (the built-in plug-ins first). A repository registered twice is a one-line error."""
    from bench import plugins
    from bench.errors import BenchError

    pm = plugins.current().pm
    found: dict[str, Callable[[int], dict[str, bytes]]] = {}
    owner: dict[str, str] = {}
    for impl in pm.hook.register_toy_repos.get_hookimpls():
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(repo: str, files: Callable[[int], dict[str, bytes]], _plugin: str = plugin) -> None:
            if repo in found:
                raise BenchError(f"toy hub repository {repo!r} is registered by both {owner[repo]!r} and "
                                 f"{_plugin!r}; uninstall one of them")
            found[repo], owner[repo] = files, _plugin

        impl.function(register=register)
    return found


def build(cache: str | os.PathLike[str], repos: Sequence[str] | None = None, seed: int = 0) -> dict[str, Path]:
    """Write the toy snapshots of ``repos`` (default: every one of :func:`toy_repos`) into the hub cache ``cache``.

    Returns repo id -> snapshot folder. Deterministic: the same seed gives the same files and commit hashes.
    """
    builders = toy_repos()
    unknown = [r for r in (repos or ()) if r not in builders]
    if unknown:
        from bench.errors import BenchError

        raise BenchError(f"the toy hub has no {unknown[0]!r}; it holds {', '.join(builders)}")
    out = {}
    for repo in repos or builders:
        files = builders[repo](seed)
        files[MARKER] = json_bytes({"repo": repo, "weights": "toy-hub", "seed": seed,
                                    "note": "toy-size networks with seeded random weights, not the published model"})
        out[repo] = write_snapshot(Path(cache), repo, files)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.toy_hub [--cache DIR] [--seed S] [REPO ...]``."""
    from bench.errors import OneLineParser, run_guarded

    parser = OneLineParser(prog="python -m bench.toy_hub",
                           description="Write toy-size models under the real hub ids into a Hugging Face hub cache.")
    parser.add_argument("--cache", help="hub cache folder to write into (default: $HF_HUB_CACHE)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("repos", nargs="*", help="repositories to write (default: all of them)")

    def body() -> int:
        args = parser.parse_args(argv)
        cache = args.cache or os.environ.get("HF_HUB_CACHE")
        if not cache:
            from huggingface_hub import constants

            cache = constants.HF_HUB_CACHE
        for repo, path in build(cache, args.repos or None, args.seed).items():
            print(f"{repo}: {path}")
        print(f"toy hub in {cache}: use it with HF_HUB_CACHE={cache} HF_HUB_OFFLINE=1 (random toy weights: "
              "nothing it produces is comparable to published numbers)")
        return 0

    return run_guarded("bench.toy_hub", body, "nothing is lost: run it again")


if __name__ == "__main__":
    raise SystemExit(main())
