"""Feature networks shared by metrics: Inception-v3 (FID, KID, IS, precision/recall), VGG-16 (precision/recall
option) and CLIP-style towers (CLIP score, HPS).

An extractor takes images already passed through the evaluation transform (uint8, B x H x W x 3) and
returns one float feature row per image. Each has a :meth:`key` that names everything its output depends
on, so features can be cached on disk and shared between metrics (FID and precision/recall read the same
Inception pass). ``weights="random"`` builds the same architecture with seeded random weights, for offline
smoke runs; such features are not comparable to published numbers.

Real weights are fetched through each library's own cache: clean-fid's Inception file in clean-fid's folder,
torchvision's VGG-16 in the torch hub cache, open_clip weights and the HPS checkpoint in the Hugging Face
cache. Offline, a missing file is a one-line error naming it and where it belongs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.registry import unknown_name_message

#: clean-fid's Inception-v3 (TF 2015-12-05 weights, converted to TorchScript by NVIDIA).
INCEPTION_FILE = "inception-2015-12-05.pt"
#: torchvision's ImageNet VGG-16 weights.
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/" + VGG16_FILE
#: Classes of the 2015-12-05 Inception graph (ImageNet's 1000 plus unused ones), used by the Inception Score.
INCEPTION_CLASSES = 1008


class Extractor(ABC):
    """A feature network; built lazily on first use."""

    kind: str = ""

    def __init__(self, weights: str = "pretrained", seed: int = 0, **options: Any) -> None:
        if weights not in ("pretrained", "random"):
            raise BenchError(f"{self.kind} weights must be 'pretrained' or 'random', not {weights!r}")
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

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One uint8 (H, W, 3) image -> this network's input array: the per-image CPU work (resizing,
        normalising). Thread-safe once the network is built, so callers may run it in a thread pool.
        Default: the image unchanged."""
        return image

    @abstractmethod
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Stacked :meth:`prepare` outputs -> float (B, D)."""

    def image_features(self, images: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) -> float (B, D): :meth:`prepare` each image, then :meth:`forward` the batch."""
        self.model  # noqa: B018 - prepare may need what building sets up
        return self.forward(np.stack([self.prepare(img) for img in images]))

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.kind} has no text tower")

    def _device(self) -> Any:
        import torch

        return torch.device(self.device) if self.device is not None else torch.device("cpu")


def _seeded(seed: int, build: Any) -> Any:
    """Call ``build`` with torch's global RNG seeded, leaving the caller's RNG state as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Silence library warnings that only say the weights are random (which we already record)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


# ----------------------------------------------------------------------------------------- Inception


def cleanfid_weights_dir() -> Path:
    """The folder clean-fid loads (and downloads) its Inception file from."""
    return Path("./" if platform.system() == "Windows" else "/tmp")


def ensure_cleanfid_inception() -> Path:
    """Path of clean-fid's Inception file, downloaded there first (atomically, with a time limit) if missing.

    clean-fid's own downloader is never used: it has no time limit and leaves partial files behind.
    """
    from cleanfid.downloads_helper import inception_url

    from bench.hub_errors import offline

    folder = cleanfid_weights_dir()
    path = folder / INCEPTION_FILE
    if path.is_file():
        return path
    what = "cannot load Inception-v3 (clean-fid, 2015-12-05 weights)"
    if offline():
        raise BenchError(f"{what} (offline mode is on (HF_HUB_OFFLINE)); needed: {INCEPTION_FILE} in {folder}; "
                         f"download {inception_url} there")
    from bench.download import RemoteFile, fetch

    try:
        return fetch(RemoteFile(INCEPTION_FILE, inception_url, None), folder, command="the same command")
    except BenchError as exc:
        raise BenchError(f"{what}; needed: {INCEPTION_FILE} in {folder}; {exc}") from exc


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


class InceptionExtractor(Extractor):
    """Inception-v3 pool3 features (2048-d) after clean-fid's "clean" resize to 299 px (PIL bicubic on
    float channels), exactly as ``cleanfid.fid`` computes them in "clean" mode.

    ``weights="pretrained"``: clean-fid's Inception-v3 (2015-12-05 weights, in clean-fid's folder).
    ``weights="random"``: torchvision's Inception-v3 architecture with seeded random weights.
    """

    kind = "inception"

    def __init__(self, weights: str = "pretrained", seed: int = 0, mode: str = "clean") -> None:
        if mode != "clean":
            raise BenchError(f"inception features: only clean-fid's 'clean' mode is supported, not {mode!r}")
        super().__init__(weights=weights, seed=seed, mode=mode)
        self._head: Any = None
        self._net: Any = None

    def build(self) -> Any:
        import torch

        device = self._device()
        if self.weights == "random":
            import torchvision

            net = _seeded(self.seed, lambda: _calibrated_random_inception(torchvision, torch, self.seed))
            net = net.to(device, memory_format=torch.channels_last)  # several times faster on CPUs

            def forward(x: Any) -> Any:  # x in [0, 255], like clean-fid's network input
                return net(((x - 128.0) / 128.0).contiguous(memory_format=torch.channels_last))

            return forward
        path = ensure_cleanfid_inception()
        from cleanfid.inception_torchscript import InceptionV3W

        try:
            net = InceptionV3W(str(path.parent), download=False, resize_inside=False).to(device).eval()
        except Exception as exc:  # noqa: BLE001 - any failure to read the file means the same thing
            raise BenchError(f"cannot read {path} ({type(exc).__name__}); it is probably an interrupted download: "
                             "delete it and run the command again") from exc
        self._net = net
        return net

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """clean-fid's "clean" resize to 299 x 299: float32 (299, 299, 3) in [0, 255]."""
        from cleanfid.resize import build_resizer

        return build_resizer("clean")(image)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float().to(self._device())
        with torch.inference_mode():
            feats = self.model(x)
        return feats.detach().double().cpu().numpy().reshape(len(batch), -1)

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Softmax over the 1008 classes from pool3 features, with the classifier's weights and no bias (as the
        original Inception Score code and clean-fid/StyleGAN's ``no_output_bias`` path do)."""
        w = self._classifier().double().numpy()
        logits = np.asarray(features, np.float64) @ w.T
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def _classifier(self) -> Any:
        import torch

        if self._head is None:
            if self.weights == "random":
                self._head = _seeded(self.seed + 1, lambda: torch.randn(INCEPTION_CLASSES, 2048) / 2048**0.5)
            else:
                self.model  # noqa: B018 - loads the network file
                try:
                    self._head = self._net.base.output.weight.detach().float().cpu()
                except AttributeError as exc:
                    raise BenchError(f"the Inception file {INCEPTION_FILE} has no classifier layer 'output'; "
                                     "the Inception Score needs it") from exc
        return self._head


# ----------------------------------------------------------------------------------------------- VGG


class VGG16Extractor(Extractor):
    """VGG-16 fc2 features (4096-d; after its ReLU by default, ``layer="fc2"`` for before), the network of
    Kynkaanniemi et al.'s precision/recall: torchvision's ImageNet weights, images resized to 224 px
    (bilinear, antialiased) and normalised with the ImageNet mean and deviation."""

    kind = "vgg16"

    def __init__(self, weights: str = "pretrained", seed: int = 0, layer: str = "fc2_relu") -> None:
        if layer not in ("fc2", "fc2_relu"):
            raise BenchError(f"vgg16 layer must be 'fc2' or 'fc2_relu', not {layer!r}")
        super().__init__(weights=weights, seed=seed, layer=layer)

    def build(self) -> Any:
        import torch
        import torchvision

        from bench.hub_errors import explain_download_failure, offline

        if self.weights == "random":
            net = _seeded(self.seed, lambda: torchvision.models.vgg16(weights=None))
        else:
            folder = Path(torch.hub.get_dir()) / "checkpoints"
            if not (folder / VGG16_FILE).is_file() and offline():
                raise BenchError(f"cannot load VGG-16 (offline mode is on (HF_HUB_OFFLINE)); needed: {VGG16_FILE} "
                                 f"in {folder}; download {VGG16_URL} there")
            with explain_download_failure("VGG-16 (torchvision ImageNet weights)", f"{VGG16_FILE} in {folder}",
                                          f"download {VGG16_URL} into {folder}"):
                net = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
        net.classifier = net.classifier[:4]  # fc1, relu, dropout, fc2
        return net.eval().to(self._device())

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self._device()).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            f = self.model((x - mean) / std)
            if self.options["layer"] == "fc2_relu":
                f = torch.relu(f)
        return f.double().cpu().numpy()


# ---------------------------------------------------------------------------------------------- CLIP


def hps_image_transform(image: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    """The HPSv2 evaluation transform: to a [0, 1] tensor, resize so the longer side is ``size`` (bicubic, on
    the tensor), pad the shorter one with zeros to a square, normalise."""
    import torch
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
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


def pil_to_normalized_array(image: Any, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """torchvision's ``ToTensor`` then ``Normalize(mean, std)`` of an 8-bit RGB PIL image, in numpy:
    float32 (3, H, W) = (pixels / 255 - mean) / std, with every operation in float32 as torch does it."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    x = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)
    x /= np.float32(255)
    x -= mean.reshape(-1, 1, 1)
    x /= std.reshape(-1, 1, 1)
    return x


class ClipExtractor(Extractor):
    """An open_clip model's normalised image and text embeddings.

    Options: ``model`` (open_clip name), ``pretrained`` (open_clip tag; ignored for random weights; None when
    all weights come from ``checkpoint``), ``checkpoint`` (a state dict loaded after building, e.g. the HPS
    model), ``transform`` ("open_clip": the model's own evaluation transform; "hps": the HPSv2 evaluation
    transform) and ``precision`` ("fp32"; "amp": float16 autocast on CUDA, as the HPSv2 scorer runs).
    """

    kind = "clip"

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
            with _quiet_logging():
                model, _, preprocess = _seeded(
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
            with _quiet_logging():
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


EXTRACTORS: dict[str, type[Extractor]] = {"inception": InceptionExtractor, "vgg16": VGG16Extractor,
                                          "clip": ClipExtractor}


def build_extractor(spec: dict[str, Any]) -> Extractor:
    """``{"kind": "inception", "weights": "random", ...}`` -> an extractor."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind not in EXTRACTORS:
        raise BenchError(unknown_name_message("feature extractor", kind, list(EXTRACTORS)))
    return EXTRACTORS[kind](**spec)
import bench.metrics.inception_tf  # noqa: E402,F401 - registers the inception_tf1 extractor (TF1-resize Inception)
