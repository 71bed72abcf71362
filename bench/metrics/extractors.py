"""Feature networks shared by metrics: Inception-v3 (FID, precision/recall) and CLIP-style towers.

An extractor takes images already passed through the evaluation transform (uint8, B x H x W x 3) and
returns one float feature row per image. Each has a :meth:`key` that names everything its output depends
on, so features can be cached on disk and shared between metrics (FID and precision/recall read the same
Inception pass). ``weights="random"`` builds the same architecture with seeded random weights, for offline
smoke runs; such features are not comparable to published numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.registry import unknown_name_message


class Extractor(ABC):
    """A feature network; built lazily on first use."""

    kind: str = ""

    def __init__(self, weights: str = "pretrained", seed: int = 0, **options: Any) -> None:
        self.weights = weights
        self.seed = seed
        self.options = options
        self.device: Any = None
        self._model: Any = None

    def spec(self) -> dict[str, Any]:
        """Everything that determines the features (stored next to them)."""
        out: dict[str, Any] = {"kind": self.kind, "weights": self.weights, **self.options}
        if self.weights == "random":
            out["seed"] = self.seed
        return out

    def key(self) -> str:
        """Short stable identifier of :meth:`spec`."""
        blob = json.dumps(self.spec(), sort_keys=True, default=str).encode()
        return f"{self.kind}-{hashlib.sha256(blob).hexdigest()[:12]}"

    def to(self, device: Any) -> Extractor:
        self.device = device
        return self

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.build()
        return self._model

    @abstractmethod
    def build(self) -> Any:
        """Create (or load) the network on ``self.device``."""

    @abstractmethod
    def image_features(self, images: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) -> float (B, D)."""

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.kind} has no text tower")


def _calibrated_random_inception(torchvision: Any, torch: Any, seed: int) -> Any:
    """torchvision's Inception-v3 with random weights whose batch-norm statistics are set by one pass over
    seeded noise, so activations keep a sane scale (plain random weights make them explode or vanish)."""
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    net.fc = torch.nn.Identity()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration pass
            m.reset_running_stats()
    net.train()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net(torch.randn(8, 3, 299, 299, generator=gen))
    return net.eval()


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Silence library warnings that only say the weights are random (which we already record)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class InceptionExtractor(Extractor):
    """Inception-v3 pool3 features (2048-d) with clean-fid's "clean" resize to 299 px.

    ``weights="pretrained"``: clean-fid's Inception-v3 (2015-12-05 weights, downloaded by clean-fid).
    ``weights="random"``: torchvision's Inception-v3 architecture with seeded random weights.
    """

    kind = "inception"

    def build(self) -> Any:
        import torch

        from bench.hub_errors import explain_download_failure

        device = self.device or torch.device("cpu")
        if self.weights == "random":
            import torchvision

            from methods.components import seeded

            net = seeded(self.seed, lambda: _calibrated_random_inception(torchvision, torch, self.seed))
            net = net.to(device, memory_format=torch.channels_last)  # several times faster on CPUs

            def forward(x: Any) -> Any:  # x in [0, 255], like clean-fid's network input
                return net(((x - 128.0) / 128.0).contiguous(memory_format=torch.channels_last))

            return forward
        from cleanfid.features import build_feature_extractor

        with explain_download_failure("Inception-v3 (clean-fid, 2015-12-05 weights)", "inception-2015-12-05.pt"):
            return build_feature_extractor("clean", device=device, use_dataparallel=False)

    def image_features(self, images: np.ndarray) -> np.ndarray:
        import torch
        from cleanfid.resize import build_resizer

        resize = build_resizer("clean")
        batch = np.stack([resize(img) for img in images]).transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(batch)).float().to(self.device or "cpu")
        with torch.inference_mode():
            feats = self.model(x)
        return feats.detach().double().cpu().numpy().reshape(len(images), -1)


class ClipExtractor(Extractor):
    """An open_clip model's normalised image and text embeddings.

    Options: ``model`` (open_clip name), ``pretrained`` (open_clip tag; ignored for random weights),
    ``checkpoint`` (a state dict to load after building, e.g. the HPS model).
    """

    kind = "clip"

    def __init__(self, weights: str = "pretrained", seed: int = 0, model: str = "ViT-g-14",
                 pretrained: str | None = "laion2b_s12b_b42k", checkpoint: str | None = None) -> None:
        opts: dict[str, Any] = {"model": model}
        if weights != "random":
            opts.update(pretrained=pretrained, checkpoint=checkpoint)
        super().__init__(weights=weights, seed=seed, **opts)

    def build(self) -> Any:
        import open_clip
        import torch

        from bench.hub_errors import explain_download_failure
        from methods.components import seeded

        device = self.device or torch.device("cpu")
        name = self.options["model"]
        if name not in open_clip.list_models():
            raise BenchError(unknown_name_message("open_clip model", name, open_clip.list_models()))
        if self.weights == "random":
            with _quiet_logging():
                model, _, preprocess = seeded(
                    self.seed, lambda: open_clip.create_model_and_transforms(name, pretrained=None)
                )
        else:
            tag = self.options.get("pretrained")
            tags = open_clip.list_pretrained_tags_by_model(name)
            if tag not in tags and not Path(str(tag)).is_file():
                raise BenchError(unknown_name_message(f"open_clip weights tag for {name}", str(tag), tags))
            source = (open_clip.get_pretrained_cfg(name, tag) or {}).get("hf_hub") or f"{name}/{tag}"
            with explain_download_failure(f"open_clip {name} ({tag})", f"hub repo {source.rstrip('/')}",
                                          "download it where there is network (it lands in the Hugging Face "
                                          "cache, HF_HOME) or pass a local checkpoint file as the tag"):
                model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag)
            if self.options.get("checkpoint"):
                from bench.hub_errors import load_state_dict

                model.load_state_dict(load_state_dict(self.options["checkpoint"]))
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(name)
        return model.eval().to(device)

    def image_features(self, images: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        model = self.model
        x = torch.stack([self.preprocess(Image.fromarray(img)) for img in images]).to(self.device or "cpu")
        with torch.inference_mode():
            f = model.encode_image(x).float()
        return torch.nn.functional.normalize(f, dim=-1).double().cpu().numpy()

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self.model
        tokens = self.tokenizer(list(texts)).to(self.device or "cpu")
        with torch.inference_mode():
            f = model.encode_text(tokens).float()
        return torch.nn.functional.normalize(f, dim=-1).double().cpu().numpy()


EXTRACTORS: dict[str, type[Extractor]] = {"inception": InceptionExtractor, "clip": ClipExtractor}


def build_extractor(spec: dict[str, Any]) -> Extractor:
    """``{"kind": "inception", "weights": "random", ...}`` -> an extractor."""
    spec = dict(spec)
    kind = spec.pop("kind")
    return EXTRACTORS[kind](**spec)
