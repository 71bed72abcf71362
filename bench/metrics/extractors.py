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
from typing import Any, ClassVar

import numpy as np

from bench.errors import BenchError

#: clean-fid's Inception-v3 (TF 2015-12-05 weights, converted to TorchScript by NVIDIA).
INCEPTION_FILE = "inception-2015-12-05.pt"
#: torchvision's ImageNet VGG-16 weights.
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/" + VGG16_FILE
#: Classes of the 2015-12-05 Inception graph (ImageNet's 1000 plus unused ones), used by the Inception Score.
INCEPTION_CLASSES = 1008


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of the distributions ``names`` ("absent" for one not installed), read from package
    metadata (nothing is imported)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


class Extractor(ABC):
    """A feature network; built lazily on first use. ``weights`` is ``"pretrained"``, ``"random"`` (seeded) or
    ``"none"`` (a network without parameters: its features are what they are, whatever the weights)."""

    #: The name the extractor is registered under (the registry sets it on every instance it builds).
    kind: str = ""
    #: The distributions whose code defines this network's numerics (its layers, resize, kernels): their versions
    #: are part of :meth:`spec` and so of every feature cache key, so that an upgrade never mixes features
    #: computed under two rules in one distance.
    numerics: ClassVar[tuple[str, ...]] = ("torch",)

    def __init__(self, weights: str = "pretrained", seed: int = 0, **options: Any) -> None:
        from bench.registry import WEIGHTS

        if weights not in WEIGHTS:
            raise BenchError(f"feature extractor {self.kind!r}: weights must be one of {', '.join(WEIGHTS)} ('none': "
                             f"a network without parameters), not {weights!r}")
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
        out["versions"] = library_versions(self.numerics)
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

    #: True for a network that scores each image together with its prompt (a reward model such as
    #: ImageReward): the engine then calls :meth:`forward_with_texts` with each image's prompt.
    text_conditioned: bool = False

    def forward_with_texts(self, batch: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Stacked :meth:`prepare` outputs and each image's prompt -> float (B, D) (text-conditioned networks)."""
        raise NotImplementedError(f"{self.kind} is not text-conditioned")

    def _device(self) -> Any:
        import torch

        return torch.device(self.device) if self.device is not None else torch.device("cpu")


def seeded(seed: int, build: Any) -> Any:
    """Call ``build`` with torch's global RNG seeded, leaving the caller's RNG state as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
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
    numerics = ("torch", "torchvision", "clean-fid", "pillow")

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

            net = seeded(self.seed, lambda: _calibrated_random_inception(torchvision, torch, self.seed))
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
                self._head = seeded(self.seed + 1, lambda: torch.randn(INCEPTION_CLASSES, 2048) / 2048**0.5)
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
    numerics = ("torch", "torchvision")

    def __init__(self, weights: str = "pretrained", seed: int = 0, layer: str = "fc2_relu") -> None:
        if layer not in ("fc2", "fc2_relu"):
            raise BenchError(f"vgg16 layer must be 'fc2' or 'fc2_relu', not {layer!r}")
        super().__init__(weights=weights, seed=seed, layer=layer)

    def build(self) -> Any:
        import torch
        import torchvision

        from bench.hub_errors import explain_download_failure, offline

        if self.weights == "random":
            net = seeded(self.seed, lambda: torchvision.models.vgg16(weights=None))
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


def build_extractor(spec: Any) -> Extractor:
    """A :class:`~bench.metrics.base.FeatureSpec` or ``{"kind": "inception", "weights": "random", ...}`` -> an
    extractor, built by the plug-in registered under the name (``python -m bench list extractors``); an unknown
    name is a one-line did-you-mean error."""
    from bench import plugins
    from bench.metrics.base import FeatureSpec

    options = spec.extractor_spec() if isinstance(spec, FeatureSpec) else dict(spec)
    kind = options.pop("kind")
    return plugins.current().extractors.get(kind).build(**options)  # named and type-checked by the registry
