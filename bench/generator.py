"""The interface every text-to-image method implements.

A generator turns prompts and *given* initial noise into images. The caller owns the noise (see
:mod:`bench.sample_noise`), so a sample depends only on (seed, index), never on batching or devices.

Generation is split into three stages so latency can be timed per stage:

``encode_prompts(prompts) -> conditioning``  text encoder
``denoise(noise, conditioning) -> latents``  denoiser: one or many network evaluations
``decode(latents) -> images``                 decoder: float images in [0, 1], shape (B, 3, H, W)

``generate`` chains them. Implementations may keep torch imports inside methods so that registering
and listing plug-ins stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from bench.errors import BenchError
from bench.options import Option, resolve_options

STAGES = ("text_encoder", "denoiser", "decoder")


class Generator(ABC):
    """Base class for methods. Subclasses are built with the method's ``--method-args`` as keywords."""

    #: Registered name: the registry sets it on every instance it builds (before ``__init__``), so a subclass
    #: registered under a new name records that name in its results, ``describe()`` and errors.
    name: str = ""
    #: Accepted ``--method-args``; unknown keys and bad values are rejected with exit status 2.
    options: ClassVar[dict[str, Option]] = {}
    #: Hub id of the published weights the method loads when ``weights=`` is not given (None: it has none).
    default_weights: ClassVar[str | None] = None
    #: Whether :meth:`write_merged` writes a merged model of two of the method's ``weights=DIR`` directories
    #: (``bench sweep-merge --save-merged`` checks it before the sweep starts).
    writes_merged: ClassVar[bool] = False

    def __init__(self, **method_args: Any) -> None:
        self.args = resolve_options("method", self.name, self.options, method_args)
        self.device: Any = None
        self.dtype: Any = None

    # -- set-up -----------------------------------------------------------------------------------
    @abstractmethod
    def load(self, device: Any, dtype: Any) -> None:
        """Build or load the networks onto ``device`` (a torch.device) in ``dtype`` (a torch.dtype)."""

    @property
    @abstractmethod
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one sample's initial noise, without the batch dimension (e.g. ``(4, 64, 64)``)."""

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of generated images."""
        raise NotImplementedError

    @property
    def fixed_batch(self) -> bool:
        """True when the loaded generator is fastest at one batch shape (compiled or replayed as CUDA graphs).
        A run then generates its last, shorter chunk padded to the full batch size (the padding is thrown
        away) rather than compiling or capturing the networks again for one odd shape."""
        return False

    @property
    def num_function_evaluations(self) -> int:
        """Denoiser evaluations per image (NFE), as tables report it."""
        return 1

    # -- stages -----------------------------------------------------------------------------------
    @abstractmethod
    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        """Text-encoder stage: prompts -> conditioning consumed by :meth:`denoise`."""

    @abstractmethod
    def denoise(self, noise: Any, conditioning: Any) -> Any:
        """Denoiser stage: initial noise (B, *noise_shape) on the generator's device -> latents."""

    @abstractmethod
    def decode(self, latents: Any) -> Any:
        """Decoder stage: latents -> float images in [0, 1] of shape (B, 3, H, W)."""

    def generate(self, noise: Any, prompts: Sequence[str]) -> Any:
        """Images for ``prompts`` from the given initial ``noise`` (one row per prompt)."""
        return self.decode(self.denoise(noise, self.encode_prompts(prompts)))

    def stages(self) -> dict[str, Callable[..., Any]]:
        """The stages in order, keyed by :data:`STAGES` names, for per-stage timing."""
        return {"text_encoder": self.encode_prompts, "denoiser": self.denoise, "decoder": self.decode}

    # -- weights, for merging (``bench sweep-merge``) ---------------------------------------------------
    def denoiser_state(self) -> dict[str, Any]:
        """The loaded denoiser's tensors by name (the live ones: copy before changing them)."""
        raise BenchError(f"method {self.name!r} cannot be merged: it does not expose its denoiser weights")

    def load_denoiser_state(self, state: dict[str, Any]) -> None:
        """Copy ``state`` (same keys and shapes) into the loaded denoiser, cast to its dtype."""
        raise BenchError(f"method {self.name!r} cannot be merged: it does not expose its denoiser weights")

    def component_states(self) -> dict[str, dict[str, Any]]:
        """The other networks and settings (text encoder, decoder, scheduler config, ...) by component name."""
        raise BenchError(f"method {self.name!r} cannot be merged: it does not expose its other components")

    def load_component_states(self, states: dict[str, dict[str, Any]]) -> None:
        """Copy the networks of ``states`` (as :meth:`component_states` gives them) into the loaded ones."""
        raise BenchError(f"method {self.name!r} cannot be merged: it does not expose its other components")

    def merge_constants(self) -> dict[str, float]:
        """Numbers of the loaded denoiser's sampling rule that belong to its weights and are merged with them
        (a one-step student's x0 constant alpha_T). Default: none."""
        return {}

    def load_merge_constants(self, values: dict[str, float]) -> None:
        """Use ``values`` (the keys of :meth:`merge_constants`) for the loaded denoiser."""
        if values:
            raise BenchError(f"method {self.name!r} has no merge constants ({', '.join(values)})")

    # -- student directories, for merging (classmethods: the registry's class, before anything is built) -------
    @classmethod
    def merge_adapter(cls, args: dict[str, str]) -> tuple[dict[str, str], Path] | None:
        """When ``args`` name an adapter directory that a merge fuses into its base before interpolating (a LoRA
        student's ``lora/``): (the args to build the generator with, the adapter directory). Default: None, the
        args build the source as given."""
        return None

    @classmethod
    def fused_adapter_state(cls, adapter: Path) -> dict[str, Any]:
        """The denoiser state of the adapter directory ``adapter`` fused into its base (:meth:`merge_adapter`)."""
        raise BenchError(f"method {cls.name!r} has no adapter directories to fuse")

    @classmethod
    def write_merged(cls, a: str, b: str, lam: float, output_dir: str, overwrite: bool = False) -> Path:
        """Write ``lam * A + (1 - lam) * B`` of two of this method's model directories ``a`` and ``b`` as a new one
        in ``output_dir`` (replacing a non-empty one only with ``overwrite``); return it."""
        raise BenchError(f"method {cls.name!r} cannot write a merged model of two of its model directories")

    def truncated_prompts(self, prompts: Sequence[str]) -> tuple[int, int] | None:
        """(how many of ``prompts`` the text encoder cuts, its token limit), or None when the generator does not
        say. The run reports the count once and records it in config.json."""
        return None

    # -- provenance -------------------------------------------------------------------------------
    def input_paths(self) -> list[Path]:
        """Local files and folders the generator reads weights or settings from. Their content is part of a
        run's identity: replacing a student under the same path makes a different run. Default: the value of
        every free-text option that names an existing path."""
        return [path.resolve() for _, path in self.path_options() if path.exists()]

    def unresolved_paths(self) -> list[str]:
        """``key=value`` of the free-text options that look like a local path (a folder path whose parent folder
        exists here) but name nothing: most likely a typo. A run that is refused for another reason names them
        too, so the user fixes both at once (a hub id such as ``owner/name`` has no such parent here)."""
        return [f"{key}={self.args[key]}" for key, path in self.path_options()
                if not path.exists() and len(path.parts) > 1 and path.parent.is_dir()]

    def path_options(self) -> list[tuple[str, Path]]:
        """(option, path) of every free-text option given a value: the options that may name a local file or
        folder (whether it exists or not)."""
        out = []
        for key, value in self.args.items():
            opt = self.options.get(key)
            if isinstance(value, str) and value and opt is not None and opt.choices is None:
                out.append((key, Path(value).expanduser()))
        return out

    def describe(self) -> dict[str, Any]:
        """Everything that identifies the model for ``config.json``: ids, revisions, resolved settings.

        Must include ``"name"`` and ``"weights"``: ``"pretrained"`` for published weights, ``"random"`` for
        seeded random ones, ``"none"`` for a generator without parameters (``"external"``: images made elsewhere,
        :mod:`bench.external`). The registry checks it (:func:`bench.registry.check_description`): a
        description without ``weights`` is a one-line error naming the plug-in, never taken as pretrained.
        """
        return {"name": self.name, "method_args": self.args}
