"""Toy-hub repositories of the metric networks the project loads with transformers' ``from_pretrained`` (which
reads their configs, so toy sizes load): FD-DINOv2's backbones, CMMD's CLIP and PickScore with its processor, at the
toy sizes of :mod:`bench.metrics.hf_extractors`, in the real repositories' root layout."""

from __future__ import annotations

from bench.toy_hub import _feature_extractor_files, _save, clip_tokenizer_files


def dinov2_files(seed: int) -> dict[str, bytes]:
    """A DINOv2 backbone (transformers ``Dinov2Model``): config.json + model.safetensors at the root."""
    from transformers import Dinov2Model

    from bench.metrics.hf_extractors import dinov2_config
    from methods.components import seeded

    return _save(seeded(seed, lambda: Dinov2Model(dinov2_config("tiny"))))


def clip_model_files(seed: int) -> dict[str, bytes]:
    """A transformers ``CLIPModel`` repository: weights, config, tokenizer and image-processor files at the root."""
    from transformers import CLIPModel

    from bench.metrics.hf_extractors import clip_config
    from methods.components import seeded

    files = _save(seeded(seed, lambda: CLIPModel(clip_config("", "tiny"))))
    files.update({k.removeprefix("tokenizer/"): v for k, v in clip_tokenizer_files("<|endoftext|>").items()})
    files.update(_feature_extractor_files())
    return files
