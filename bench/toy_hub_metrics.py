"""Toy-hub repositories of the metric networks the project loads with transformers' ``from_pretrained`` (which
reads their configs, so toy sizes load): FD-DINOv2's backbones, CMMD's CLIP and PickScore with its processor, at the
toy sizes of :mod:`bench.metrics.hf_extractors`, in the real repositories' root layout."""

from __future__ import annotations

from collections.abc import Callable

from bench.toy_hub import (
    CMMD_CLIP,
    DINOV2,
    PICKSCORE,
    PICKSCORE_PROCESSOR,
    clip_tokenizer_files,
    feature_extractor_files,
    saved_files,
)


def dinov2_files(seed: int) -> dict[str, bytes]:
    """A DINOv2 backbone (transformers ``Dinov2Model``): config.json + model.safetensors at the root."""
    from transformers import Dinov2Model

    from bench.metrics.extractors import seeded
    from bench.metrics.hf_extractors import dinov2_config

    return saved_files(seeded(seed, lambda: Dinov2Model(dinov2_config("tiny"))))


def clip_model_files(seed: int) -> dict[str, bytes]:
    """A transformers ``CLIPModel`` repository: weights, config, tokenizer and image-processor files at the root."""
    from transformers import CLIPModel

    from bench.metrics.extractors import seeded
    from bench.metrics.hf_extractors import clip_config

    files = saved_files(seeded(seed, lambda: CLIPModel(clip_config("", "tiny"))))
    files.update({k.removeprefix("tokenizer/"): v for k, v in clip_tokenizer_files("<|endoftext|>").items()})
    files.update(feature_extractor_files())
    return files


def register_metric_repos(register: Callable[..., None]) -> None:
    """``register(repo, files)`` for every metric network's repository; ``files(seed)`` builds the files."""
    for k, repo in enumerate(DINOV2):
        register(repo, lambda seed, k=k: dinov2_files(seed + 200 + k))
    for repo, offset in ((CMMD_CLIP, 300), (PICKSCORE, 301), (PICKSCORE_PROCESSOR, 302)):
        register(repo, lambda seed, offset=offset: clip_model_files(seed + offset))
