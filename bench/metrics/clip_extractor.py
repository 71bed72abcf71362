"""open_clip towers as a feature network: the CLIP score's ViT-g-14 and the HPSv2 scorer's ViT-H-14.

Images get the model's own evaluation transform (or the HPSv2 transform), with its final ToTensor + Normalize
run in numpy (bit-identical) so the worker threads that prepare images never start torch's CPU thread pools.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.metrics.extractors import Extractor, pil_to_normalized_array, quiet_logging, seeded
from bench.registry import unknown_name_message


def hps_image_transform(image: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    """The HPSv2 evaluation transform: to a [0, 1] tensor, resize so the longer side is ``size`` (bicubic, on
    the tensor), pad the shorter one with zeros to a square, normalise."""
    import torch
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    # a copy: decoded images can be read-only arrays, which torch.from_numpy warns about
    x = torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1).float().div(255)
    h, w = x.shape[1:]
    scale = size / float(max(h, w))
    if scale != 1.0:
        nh, nw = round(h * scale), round(w * scale)
        x = TF.resize(x, [nh, nw], InterpolationMode.BICUBIC)
        ph, pw = size - nh, size - nw
        x = TF.pad(x, [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2], fill=0)
    return TF.normalize(x, list(mean), list(std))


def split_to_tensor_normalize(transform: Any) -> tuple[list[Any], np.ndarray, np.ndarray] | None:
    """(PIL steps, mean, std) when ``transform`` is a Compose of PIL-image steps, then ToTensor, then Normalize
    (the open_clip evaluation transforms); else None.

    The last two steps can then run in numpy (:func:`pil_to_normalized_array`): same float32 operations, same
    bits, and no torch CPU kernels in the threads that prepare images (each such thread would start its own
    pool of OpenMP threads and starve the rest of the machine).
    """
    from torchvision.transforms import Normalize, ToTensor

    steps = list(getattr(transform, "transforms", []))
    cut = next((i for i, step in enumerate(steps) if isinstance(step, ToTensor)), None)
    if cut is None or len(steps) != cut + 2 or not isinstance(steps[-1], Normalize):
        return None
    if type(steps[cut]).__call__ not in (ToTensor.__call__, _maybe_to_tensor_call()):
        return None
    norm = steps[-1]
    return steps[:cut], np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32)


def _maybe_to_tensor_call() -> Any:
    try:
        from open_clip.transform import MaybeToTensor
    except ImportError:  # pragma: no cover - older open_clip
        return None
    return MaybeToTensor.__call__


class ClipExtractor(Extractor):
    """An open_clip model's normalised image and text embeddings.

    Options: ``model`` (open_clip name), ``pretrained`` (open_clip tag; ignored for random weights; None when
    all weights come from ``checkpoint``), ``checkpoint`` (a state dict loaded after building, e.g. the HPS
    model), ``transform`` ("open_clip": the model's own evaluation transform; "hps": the HPSv2 evaluation
    transform) and ``precision`` ("fp32"; "amp": float16 autocast on CUDA, as the HPSv2 scorer runs).
    """

    kind = "clip"
    numerics = ("torch", "torchvision", "open_clip_torch", "pillow")

    def __init__(self, weights: str = "pretrained", seed: int = 0, model: str = "ViT-g-14",
                 pretrained: str | None = "laion2b_s12b_b42k", checkpoint: str | None = None,
                 transform: str = "open_clip", precision: str = "fp32", version: str | None = None) -> None:
        if transform not in ("open_clip", "hps"):
            raise BenchError(f"clip transform must be 'open_clip' or 'hps', not {transform!r}")
        if precision not in ("fp32", "amp"):
            raise BenchError(f"clip precision must be 'fp32' or 'amp', not {precision!r}")
        opts: dict[str, Any] = {"model": model, "transform": transform, "precision": precision}
        if weights != "random":
            opts.update(pretrained=pretrained, checkpoint=checkpoint)
            if version is not None:
                opts["version"] = version
        super().__init__(weights=weights, seed=seed, **opts)

    def build(self) -> Any:
        import open_clip

        from bench.hub_errors import explain_download_failure

        device = self._device()
        name = self.options["model"]
        if name not in open_clip.list_models():
            raise BenchError(unknown_name_message("open_clip model", name, open_clip.list_models()))
        tag = self.options.get("pretrained")
        if self.weights == "random":
            with quiet_logging():
                model, _, preprocess = seeded(
                    self.seed, lambda: open_clip.create_model_and_transforms(name, pretrained=None)
                )
        elif tag:
            tags = open_clip.list_pretrained_tags_by_model(name)
            if tag not in tags and not Path(str(tag)).is_file():
                raise BenchError(unknown_name_message(f"open_clip weights tag for {name}", str(tag), tags))
            source = (open_clip.get_pretrained_cfg(name, tag) or {}).get("hf_hub") or f"{name}/{tag}"
            with explain_download_failure(f"open_clip {name} ({tag})", f"hub repo {source.rstrip('/')}",
                                          "download it where there is network (it lands in the Hugging Face "
                                          "cache, HF_HOME) or pass a local checkpoint file as the tag"):
                model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag)
        elif self.options.get("checkpoint"):
            with quiet_logging():
                model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
        else:
            raise BenchError(f"open_clip {name}: neither a weights tag nor a checkpoint was given")
        if self.weights != "random" and self.options.get("checkpoint"):
            from bench.hub_errors import load_state_dict

            state = load_state_dict(self.options["checkpoint"])
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise BenchError(f"checkpoint {self.options['checkpoint']} does not fit open_clip {name}: "
                                 f"{str(exc).splitlines()[0]}") from exc
        self.preprocess = preprocess
        self._split = split_to_tensor_normalize(preprocess)
        self.tokenizer = open_clip.get_tokenizer(name)
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", model.visual.image_size)
        self.image_size = int(size if isinstance(size, int) else size[0])
        return model.eval().to(device)

    def _autocast(self) -> Any:
        import torch

        if self.options["precision"] == "amp" and self._device().type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The model's evaluation transform (or the HPSv2 one): float32 (3, S, S), normalised."""
        from PIL import Image

        if self.options["transform"] == "hps":
            from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

            return hps_image_transform(image, self.image_size, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD).numpy()
        if self._split is None:
            return self.preprocess(Image.fromarray(image)).numpy()
        pil_steps, mean, std = self._split
        img = Image.fromarray(image)
        for step in pil_steps:
            img = step(img)
        return pil_to_normalized_array(img, mean, std)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        model = self.model
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self._device())
        with torch.inference_mode(), self._autocast():
            f = model.encode_image(x)
        return torch.nn.functional.normalize(f.float(), dim=-1).double().cpu().numpy()

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self.model
        tokens = self.tokenizer(list(texts)).to(self._device())
        with torch.inference_mode(), self._autocast():
            f = model.encode_text(tokens)
        return torch.nn.functional.normalize(f.float(), dim=-1).double().cpu().numpy()
