"""Feature networks built with ``transformers``: DINOv2 (FD_DINOv2, precision/recall, diversity) and CLIP models
in their Hugging Face form (CMMD's ViT-L/14 at 336 px, PickScore).

``weights="pretrained"`` reads the published safetensors from the hub (never remote code); offline, a missing
file is one line naming the repository. ``weights="random"`` builds the same architecture from a config kept
here with seeded random weights; ``size="tiny"`` gives a toy-size version of the family for CPU tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.metrics.extractors import Extractor, pil_to_normalized_array, quiet_logging, seeded

IMAGENET_MEAN = np.asarray([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.asarray([0.229, 0.224, 0.225], np.float32)
CLIP_MEAN = np.asarray([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.asarray([0.26862954, 0.26130258, 0.27577711], np.float32)

#: DINOv2 backbones (torch hub names -> the transformers ports of the same weights) and their shapes.
DINOV2_REPOS = {"vits14": "facebook/dinov2-small", "vitb14": "facebook/dinov2-base",
                "vitl14": "facebook/dinov2-large", "vitg14": "facebook/dinov2-giant"}
DINOV2_SHAPES = {"vits14": (384, 12, 6), "vitb14": (768, 12, 12), "vitl14": (1024, 24, 16), "vitg14": (1536, 40, 24),
                 "tiny": (32, 2, 2)}
#: CLIP-style models of this module: hub id -> (vision size, patch, width, layers, heads, text width, layers,
#: heads, projection).
CLIP_SHAPES = {
    "openai/clip-vit-large-patch14-336": (336, 14, 1024, 24, 16, 768, 12, 12, 768),
    "yuvalkirstain/PickScore_v1": (224, 14, 1280, 32, 16, 1024, 24, 16, 1024),
}
TINY_CLIP = (56, 14, 32, 2, 2, 32, 2, 2, 16)


def _load_hf(what: str, repo: str, load: Any) -> Any:
    """``load()`` (a ``from_pretrained`` call) with download failures turned into one line."""
    from bench.hub_errors import explain_download_failure

    with explain_download_failure(what, f"hub repo {repo} (safetensors weights and config)",
                                  f"run `hf download {repo}` where there is network (it lands in the Hugging Face "
                                  "cache, HF_HOME)"):
        return load()


def pil_bicubic(image: np.ndarray, size: int) -> Any:
    """uint8 (H, W, 3) -> a ``size`` x ``size`` PIL image, PIL's bicubic resize (antialiased) in 8 bits."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    return img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC)


class _HFExtractor(Extractor):
    """Common parts: sizes, the ``model`` property's device, torch forward to float64 numpy."""

    numerics = ("torch", "transformers", "pillow")

    def __init__(self, weights: str = "pretrained", seed: int = 0, size: str = "full", **options: Any) -> None:
        if size not in ("full", "tiny"):
            raise BenchError(f"{self.kind} size must be 'full' or 'tiny', not {size!r}")
        if size == "tiny" and weights != "random":
            raise BenchError(f"{self.kind}: size=tiny exists only with weights=random")
        super().__init__(weights=weights, seed=seed, size=size, **options)

    def _tensor(self, batch: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device())


# --------------------------------------------------------------------------------------------- DINOv2


def dinov2_config(arch: str) -> Any:
    """The transformers ``Dinov2Config`` of a DINOv2 backbone (patch 14, 518 px position grid, the toy-size one's
    too: its position embeddings are resized as the real ones are)."""
    from transformers import Dinov2Config

    width, layers, heads = DINOV2_SHAPES[arch]
    extra = {"use_swiglu_ffn": True} if arch == "vitg14" else {}
    return Dinov2Config(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, patch_size=14,
                        image_size=518, **extra)


#: The torch-hub DINOv2's offset added to the patch grid before its position embeddings are resized.
HUB_INTERPOLATE_OFFSET = 0.1


def hub_position_embeddings(table: Any, patch: int, height: int, width: int) -> Any:
    """The position embeddings (1, 1 + rows * cols, dim) the torch-hub DINOv2 (what dgm-eval and torch-fidelity
    load) adds to a ``height`` x ``width`` image's tokens, from its table (1, 1 + M * M, dim) on an M x M grid:
    the table itself for a square image of M x M patches, else the grid resized bicubically (no antialiasing)
    by the scale factors (rows + 0.1) / M and (cols + 0.1) / M, computed in float32. transformers resizes to the
    target size instead; the two grids sample the table at different points (features differ, e.g. by up to
    2.5e-3 with random ViT-L/14 weights at 224 px)."""
    import math

    import torch

    grid = table.shape[1] - 1
    rows, cols = height // patch, width // patch
    if rows * cols == grid and height == width:
        return table
    m = int(math.sqrt(grid))
    patches = table[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    scale = ((rows + HUB_INTERPOLATE_OFFSET) / m, (cols + HUB_INTERPOLATE_OFFSET) / m)
    patches = torch.nn.functional.interpolate(patches, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(patches.shape[-2:]) != (rows, cols):
        raise ValueError(f"position grid resized to {tuple(patches.shape[-2:])}, not {(rows, cols)}")
    patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
    return torch.cat((table[:, :1].float(), patches), dim=1).to(table.dtype)


def use_hub_position_embeddings(model: Any) -> Any:
    """``model`` (a transformers ``Dinov2Model``) with its position embeddings resized by the torch-hub rule
    (:func:`hub_position_embeddings`)."""
    emb = model.embeddings
    patch = int(model.config.patch_size)

    def interpolate(embeddings: Any, height: int, width: int) -> Any:
        return hub_position_embeddings(emb.position_embeddings, patch, height, width).to(embeddings.dtype)

    emb.interpolate_pos_encoding = interpolate
    return model


class Dinov2Extractor(_HFExtractor):
    """DINOv2 CLS token after the final layer norm (1024-d for ViT-L/14), with dgm-eval's preprocessing: PIL
    bicubic resize of the image as given to 224 x 224 (antialiased; dgm-eval does not crop, the fd_dinov2 metric
    centre-crops first unless ``crop=false``), to [0, 1], ImageNet mean and deviation.

    Weights: ``facebook/dinov2-<size>`` (the transformers port of the torch-hub ``dinov2_<arch>`` weights dgm-eval
    loads). ``arch``: vits14, vitb14, vitl14 (default), vitg14. ``pos_embed``: how the 37 x 37 position table
    is resized to the 16 x 16 patches of a 224 px image: ``"hub"`` (default), the torch-hub network's rule
    (:func:`hub_position_embeddings`), so that the features are dgm-eval's; ``"transformers"``, transformers'
    own rule (resize to the target size; not dgm-eval's network).
    """

    kind = "dinov2"
    input_size = 224

    def __init__(self, weights: str = "pretrained", seed: int = 0, arch: str = "vitl14", size: str = "full",
                 pos_embed: str = "hub") -> None:
        if arch not in DINOV2_REPOS:
            from bench.registry import unknown_name_message

            raise BenchError(unknown_name_message("DINOv2 architecture", arch, list(DINOV2_REPOS)))
        if pos_embed not in ("hub", "transformers"):
            raise BenchError(f"dinov2 pos_embed must be 'hub' or 'transformers', not {pos_embed!r}")
        super().__init__(weights=weights, seed=seed, size=size, arch=arch, pos_embed=pos_embed)

    def build(self) -> Any:
        from transformers import Dinov2Model

        arch = "tiny" if self.options["size"] == "tiny" else self.options["arch"]
        if self.weights == "random":
            with quiet_logging():
                model = seeded(self.seed, lambda: Dinov2Model(dinov2_config(arch)))
        else:
            repo = DINOV2_REPOS[arch]
            model = _load_hf(f"DINOv2 {arch}", repo, lambda: Dinov2Model.from_pretrained(repo, use_safetensors=True))
        if self.options["pos_embed"] == "hub":
            use_hub_position_embeddings(model)
        return model.eval().to(self._device())

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """float32 (3, 224, 224): dgm-eval's torchvision ``Resize((224, 224), BICUBIC)``, ``ToTensor``,
        ``Normalize`` (ImageNet), computed with PIL and numpy."""
        return pil_to_normalized_array(pil_bicubic(image, self.input_size), IMAGENET_MEAN, IMAGENET_STD)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(pixel_values=self._tensor(batch))
        return out.pooler_output.double().cpu().numpy()


# ----------------------------------------------------------------------------------------------- CLIP


def clip_config(repo: str, size: str) -> Any:
    """A transformers ``CLIPConfig`` for ``repo``'s architecture (or the toy one)."""
    from transformers import CLIPConfig

    if size == "tiny":
        shape = TINY_CLIP
    elif repo in CLIP_SHAPES:
        shape = CLIP_SHAPES[repo]
    else:
        raise BenchError(f"no architecture kept for {repo!r} (random weights exist for {', '.join(CLIP_SHAPES)})")
    img, patch, vw, vl, vh, tw, tl, th, proj = shape
    return CLIPConfig(
        vision_config={"image_size": img, "patch_size": patch, "hidden_size": vw, "num_hidden_layers": vl,
                       "num_attention_heads": vh, "intermediate_size": 4 * vw, "hidden_act": "gelu" if vw == 1280
                       else "quick_gelu"},
        text_config={"hidden_size": tw, "num_hidden_layers": tl, "num_attention_heads": th, "intermediate_size": 4 * tw,
                     "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu" if tw == 1024
                     else "quick_gelu"},
        projection_dim=proj)


class HFClipExtractor(_HFExtractor):
    """A transformers ``CLIPModel``'s L2-normalised image and text embeddings (projections).

    ``resize``: ``"cmmd"`` (google-research/cmmd's reader: the image as given, which the CMMD metric has
    centre-cropped to a square, resized to the model's input size by PIL's bicubic filter in 8 bits, then to
    [0, 1]; cmmd's own float bicubic resize then finds the image at its size and leaves it) or ``"processor"``
    (the repo's CLIPProcessor: shortest side to the input size, PIL bicubic, centre crop; PickScore's path). ``processor``: hub repo of the processor (tokenizer) when it is
    not ``repo`` (PickScore's is ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``).
    """

    kind = "hf_clip"

    def __init__(self, weights: str = "pretrained", seed: int = 0, repo: str = "openai/clip-vit-large-patch14-336",
                 processor: str | None = None, resize: str = "cmmd", size: str = "full") -> None:
        if resize not in ("cmmd", "processor"):
            raise BenchError(f"hf_clip resize must be 'cmmd' or 'processor', not {resize!r}")
        super().__init__(weights=weights, seed=seed, size=size, repo=repo, processor=processor or repo,
                         resize=resize)
        self._logit_scale = 1.0

    def build(self) -> Any:
        from transformers import CLIPModel

        repo = self.options["repo"]
        if self.weights == "random":
            with quiet_logging():
                model = seeded(self.seed, lambda: CLIPModel(clip_config(repo, self.options["size"])))
            import open_clip

            tok = open_clip.get_tokenizer("ViT-B-32")  # the same BPE vocabulary, 77 tokens, offline
            self._tokenize = lambda texts: tok(list(texts))
        else:
            from transformers import CLIPTokenizer

            model = _load_hf(f"CLIP {repo}", repo, lambda: CLIPModel.from_pretrained(repo, use_safetensors=True))
            proc = self.options["processor"]
            hf_tok = _load_hf(f"CLIP tokenizer {proc}", proc, lambda: CLIPTokenizer.from_pretrained(proc))
            self._tokenize = lambda texts: hf_tok(list(texts), padding="max_length", truncation=True, max_length=77,
                                                  return_tensors="pt")["input_ids"]
        self.input_size = int(model.config.vision_config.image_size)
        self._logit_scale = float(model.logit_scale.detach().exp())
        return model.eval().to(self._device())

    @property
    def logit_scale(self) -> float:
        """``logit_scale.exp()`` of the model (built if needed)."""
        self.model  # noqa: B018
        return self._logit_scale

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """float32 (3, S, S), CLIP-normalised (S: the model's input size)."""
        s = self.input_size
        if self.options["resize"] == "cmmd":
            return pil_to_normalized_array(pil_bicubic(image, s), CLIP_MEAN, CLIP_STD)
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(image))
        w, h = img.size  # CLIPImageProcessor: shortest edge to s, the other int(s * long / short), then crop
        size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        if img.size != size:
            img = img.resize(size, Image.BICUBIC)
        left, top = (size[0] - s) // 2, (size[1] - s) // 2
        return pil_to_normalized_array(img.crop((left, top, left + s, top + s)), CLIP_MEAN, CLIP_STD)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            f = self.model.get_image_features(pixel_values=self._tensor(batch))
        return torch.nn.functional.normalize(_tensor_of(f).float(), dim=-1).double().cpu().numpy()

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self.model
        ids = self._tokenize(texts).to(self._device())
        with torch.inference_mode():
            f = model.get_text_features(input_ids=ids)
        return torch.nn.functional.normalize(_tensor_of(f).float(), dim=-1).double().cpu().numpy()


def _tensor_of(output: Any) -> Any:
    """The embedding tensor of ``get_*_features`` (a tensor, or an output object in newer transformers)."""
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        if hasattr(output, name) and getattr(output, name) is not None and not hasattr(output, "shape"):
            return getattr(output, name)
    return output

