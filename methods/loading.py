"""Building the networks of SD-style methods: published weights (hub or local), or seeded random ones.

Every method goes through this module, so all of them share the same rules:

* ``weights=random`` builds the full-size architecture from :mod:`methods.configs` with seeded weights and
  downloads nothing; ``size=tiny`` gives the same family at toy size (:func:`methods.components.build_tiny_components`).
* Published weights come from a hub id (``revision=`` pins a branch, tag or commit; the resolved commit is
  recorded) or a local directory in the diffusers layout. Only safetensors files are read and no code from a
  repository is ever run.
* Offline (``HF_HUB_OFFLINE=1``) or missing weights fail at once with one line naming the repository, the files
  and the command that downloads them (:func:`fetch`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.options import Option
from methods.components import Components

RANDOM = "random"
TAESD_REPO = "madebyollin/taesd"

#: ``--method-args`` that every SD-style method accepts.
COMMON_OPTIONS: dict[str, Option] = {
    "weights": Option(None, str, help="hub id, local diffusers directory, or 'random' (seeded, full architecture)"),
    "revision": Option(None, str, help="hub branch, tag or commit of the weights (the resolved commit is recorded)"),
    "size": Option("full", str, ("full", "tiny"), help="tiny: toy-size networks of the same family (random weights)"),
    "vae": Option("full", str, ("full", "tiny"), help="decoder: the SD VAE, or the TAESD AutoencoderTiny"),
    "taesd": Option(TAESD_REPO, str, help="hub id or directory of the TAESD decoder used with vae=tiny"),
    "weights_seed": Option(0, int, help="seed of random weights", minimum=0),
    "compile": Option(False, bool, help="torch.compile the networks"),
    "compile_mode": Option(
        "default", str, ("default", "max-autotune-no-cudagraphs", "max-autotune"), help="torch.compile mode"
    ),
    "channels_last": Option(False, bool, help="channels-last memory format for the UNet and VAE"),
    "decode_chunk": Option(0, int, help="decode at most this many latents at a time (0: the whole batch)",
                           minimum=0),
}

#: Files of a diffusers Stable Diffusion repository, per component.
SD_FILES: dict[str, tuple[str, ...]] = {
    "unet": ("unet/config.json", "unet/diffusion_pytorch_model.safetensors"),
    "text_encoder": ("text_encoder/config.json", "text_encoder/model.safetensors"),
    "tokenizer": ("tokenizer/*",),
    "vae": ("vae/config.json", "vae/diffusion_pytorch_model.safetensors"),
    "scheduler": ("scheduler/scheduler_config.json",),
}
#: Files of the frozen networks of an SD repository (everything but the UNet).
BASE_FILES = [f for k in ("text_encoder", "tokenizer", "vae", "scheduler") for f in SD_FILES[k]]
#: Files of a repository or directory that holds one diffusers model at its root.
MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


# -- where weights come from ---------------------------------------------------------------------------
@dataclass
class Snapshot:
    """A local directory holding (part of) a model repository, and where it came from."""

    ref: str
    path: Path
    revision: str | None = None
    local: bool = False

    @property
    def toy(self) -> bool:
        """True for a snapshot of the offline toy hub (:mod:`bench.toy_hub`): random toy-size weights."""
        from bench.hub_cache import is_toy

        return is_toy(self.path)

    def provenance(self) -> dict[str, Any]:
        where: dict[str, Any] = {"path": str(self.path.resolve())} if self.local else {"id": self.ref,
                                                                                         "revision": self.revision}
        return {**where, "toy_hub": True} if self.toy else where


def weights_of(*snapshots: Snapshot) -> str:
    """``"random"`` when any of the snapshots holds toy-hub weights, else ``"pretrained"``."""
    return RANDOM if any(s.toy for s in snapshots) else "pretrained"


def looks_local(ref: str) -> bool:
    """True for an existing path or something written as a path (absolute, ./, ../, ~)."""
    return Path(ref).expanduser().exists() or ref.startswith(("/", "./", "../", "~", "."))


def download_hint(repo: str, revision: str | None, option: str) -> str:
    """How to get ``repo`` onto this machine, or point at a copy of it."""
    rev = f" --revision {revision}" if revision else ""
    return (
        f"download it while online with `hf download {repo}{rev}` (huggingface_hub < 1.0: "
        f"`huggingface-cli download {repo}{rev}`), or pass {option}=/path/to/a/local/copy"
    )


def fetch(repo: str, files: Sequence[str], revision: str | None = None, option: str = "weights") -> Snapshot:
    """Resolve ``repo`` (hub id or local directory) to a local directory holding ``files`` (glob patterns).

    Hub repositories are read from the cache when offline and downloaded otherwise (only the listed files).
    Failures become a one-line :class:`BenchError` naming the repository, files and download command.
    """
    if looks_local(repo):
        path = Path(repo).expanduser()
        if not path.is_dir():
            raise BenchError(f"{option}={repo}: no such directory; give a diffusers model directory or a hub id")
        return Snapshot(repo, path, None, local=True)
    from huggingface_hub import snapshot_download

    from bench.hub_errors import explain_download_failure, offline

    if repo.count("/") != 1:
        raise BenchError(f"{option}={repo!r} is neither an existing directory nor a hub id of the form owner/name")
    with explain_download_failure(repo, ", ".join(files), download_hint(repo, revision, option)):
        try:
            local = snapshot_download(
                repo, revision=revision, allow_patterns=list(files), local_files_only=offline()
            )
        except Exception as exc:  # noqa: BLE001 - hub errors without a network cause are reported alike
            name = type(exc).__name__
            if name in {"RevisionNotFoundError", "GatedRepoError", "HFValidationError", "DisabledRepoError"}:
                first = (str(exc).strip().splitlines() or [name])[0]
                raise BenchError(f"cannot load {repo}: {first}; {download_hint(repo, revision, option)}") from exc
            raise
    path = Path(local)
    return Snapshot(repo, path, path.name, local=False)


def _load(what: str, where: Snapshot, build: Callable[[], Any], option: str = "weights") -> Any:
    """Run a ``from_pretrained`` call; a missing or non-safetensors file, or a malformed config.json (a value
    of the wrong type fails inside the model's constructor), becomes a one-line error."""
    try:
        return build()
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, TypeError | KeyError | AttributeError):
            first = f"its config.json is malformed ({type(exc).__name__}: {first})"
        hint = (
            "it must be a diffusers directory with safetensors weights"
            if where.local
            else download_hint(where.ref, where.revision, option)
        )
        raise BenchError(f"cannot load the {what} from {where.ref}: {first[:300]}; {hint}") from exc


def _subfolder(snap: Snapshot, name: str) -> str | None:
    """``name`` when the snapshot has that sub-directory with a config, else None (model at the root)."""
    return name if (snap.path / name / "config.json").is_file() else None


def load_unet(snap: Snapshot, option: str = "weights") -> Any:
    """The UNet of a pipeline directory (``unet/``) or of a bare model directory."""
    from diffusers import UNet2DConditionModel

    sub = _subfolder(snap, "unet")
    return _load(
        "UNet",
        snap,
        lambda: UNet2DConditionModel.from_pretrained(snap.path, subfolder=sub, use_safetensors=True),
        option,
    )


def load_base(snap: Snapshot, option: str = "weights") -> dict[str, Any]:
    """Tokenizer, text encoder, VAE and scheduler config of an SD pipeline directory."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    from methods.components import hf_tokenizer

    tokenizer = _load("tokenizer", snap, lambda: CLIPTokenizer.from_pretrained(snap.path, subfolder="tokenizer"), option)
    text_encoder = _load(
        "text encoder",
        snap,
        lambda: CLIPTextModel.from_pretrained(snap.path, subfolder="text_encoder", use_safetensors=True),
        option,
    )
    vae = _load(
        "VAE", snap, lambda: AutoencoderKL.from_pretrained(snap.path, subfolder="vae", use_safetensors=True), option
    )
    config_path = snap.path / "scheduler" / "scheduler_config.json"
    if not config_path.is_file():
        raise BenchError(f"cannot load the scheduler from {snap.ref}: scheduler/scheduler_config.json is missing; "
                         + download_hint(snap.ref, snap.revision, option))
    return {
        "tokenize": hf_tokenizer(tokenizer),
        "text_encoder": text_encoder,
        "vae": vae,
        "scheduler_config": json.loads(config_path.read_text()),
    }


# -- seeded random networks ----------------------------------------------------------------------------
def random_networks(arch: str = "sd21", seed: int = 0, device: Any = None) -> dict[str, Any]:
    """Full-size text encoder, UNet and VAE of ``arch`` with seeded random weights, built on ``device``.

    ``device="meta"`` builds shapes only (for parameter counts); a CUDA device builds there directly, which is
    much faster than initialising 1.3B parameters on the CPU.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from methods.components import seeded
    from methods.configs import ARCHITECTURES, SD_VAE_CONFIG

    unet_config, text_config = ARCHITECTURES[arch]
    where = torch.device(device) if device is not None else torch.device("cpu")

    def on_device(build: Callable[[], Any]) -> Callable[[], Any]:
        def inner() -> Any:
            with where:
                return build()

        return inner

    return {
        "text_encoder": seeded(seed, on_device(lambda: CLIPTextModel(CLIPTextConfig(**text_config)))),
        "unet": seeded(seed + 1, on_device(lambda: UNet2DConditionModel(**unet_config))),
        "vae": seeded(seed + 2, on_device(lambda: AutoencoderKL(**SD_VAE_CONFIG))),
    }


def random_taesd(seed: int = 0, size: str = "full", device: Any = None) -> Any:
    """An AutoencoderTiny (TAESD) with seeded random weights; ``size=tiny`` matches the toy VAE's scale."""
    import torch
    from diffusers import AutoencoderTiny

    from methods.components import seeded
    from methods.configs import TAESD_CONFIG, TINY_TAESD_CONFIG

    config = TINY_TAESD_CONFIG if size == "tiny" else TAESD_CONFIG

    def build() -> Any:
        with torch.device(device if device is not None else "cpu"):
            return AutoencoderTiny(**config)

    return seeded(seed + 3, build)


def scheduler_from_config(config: Mapping[str, Any], cls_name: str | None = None) -> Any:
    """A diffusers scheduler from a config dict; the class is ``cls_name`` or the config's ``_class_name``."""
    import diffusers

    name = cls_name or config.get("_class_name") or "DDPMScheduler"
    cls = getattr(diffusers, name, None)
    if cls is None:
        raise BenchError(f"scheduler class {name!r} is not in diffusers {diffusers.__version__}")
    return cls.from_config(dict(config))


# -- assembling a method's components ------------------------------------------------------------------
@dataclass
class Built:
    """Components plus where each came from (for ``describe``)."""

    components: Components
    scheduler_config: dict[str, Any]
    sources: dict[str, Any] = field(default_factory=dict)
    weights: str = "pretrained"


def wants_random(args: Mapping[str, Any], method: str) -> bool:
    """True for ``weights=random`` or ``size=tiny``; rejects ``size=tiny`` combined with published weights."""
    if args.get("weights") == RANDOM:
        return True
    if args.get("size") == "tiny":
        if args.get("weights") not in (None, RANDOM):
            raise BenchError(f"method {method!r}: size=tiny builds random toy networks; drop weights= or use "
                             "weights=random")
        return True
    return False


def random_components(arch: str, args: Mapping[str, Any], device: Any = None) -> Built:
    """Seeded random components of ``arch`` at ``args['size']`` (full or tiny)."""
    from methods.components import SD_SCHEDULER_CONFIG, build_tiny_components, open_clip_tokenizer

    seed = int(args.get("weights_seed") or 0)
    if args.get("size") == "tiny":
        parts = build_tiny_components(seed)
        return Built(parts, dict(SD_SCHEDULER_CONFIG), {"architecture": f"{arch}-toy", "seed": seed}, RANDOM)
    nets = random_networks(arch, seed, device)
    parts = Components(
        tokenize=open_clip_tokenizer(77),
        text_encoder=nets["text_encoder"],
        unet=nets["unet"],
        vae=nets["vae"],
        scheduler=scheduler_from_config(SD_SCHEDULER_CONFIG, "DDPMScheduler"),
    )
    return Built(parts, dict(SD_SCHEDULER_CONFIG), {"architecture": arch, "seed": seed}, RANDOM)


def pretrained_components(
    unet_repo: str,
    base_repo: str,
    revision: str | None = None,
    unet_option: str = "weights",
    base_option: str = "weights",
) -> Built:
    """UNet from ``unet_repo`` (at ``revision``) and tokenizer, text encoder, VAE and scheduler from ``base_repo``."""
    if unet_repo == base_repo:
        snap = fetch(base_repo, [*SD_FILES["unet"], *BASE_FILES], revision, unet_option)
        unet_snap = base_snap = snap
    else:
        unet_snap = fetch(unet_repo, [*SD_FILES["unet"], *MODEL_FILES], revision, unet_option)
        base_snap = fetch(base_repo, BASE_FILES, None, base_option)
    built = on_base(base_snap, load_unet(unet_snap, unet_option), base_option)
    built.sources["unet"] = unet_snap.provenance()
    built.weights = weights_of(unet_snap, base_snap)
    return built


def on_base(base_snap: Snapshot, unet: Any, option: str = "weights") -> Built:
    """A UNet paired with the tokenizer, text encoder, VAE and (DDPM) scheduler of a base SD snapshot."""
    base = load_base(base_snap, option)
    parts = Components(
        tokenize=base["tokenize"],
        text_encoder=base["text_encoder"],
        unet=unet,
        vae=base["vae"],
        scheduler=scheduler_from_config(base["scheduler_config"], "DDPMScheduler"),
    )
    sources = {"text_encoder": base_snap.provenance(), "vae": base_snap.provenance()}
    return Built(parts, base["scheduler_config"], sources, weights_of(base_snap))


def with_tiny_decoder(
    built: Built, args: Mapping[str, Any], device: Any = None, random: bool | None = None, seed: int | None = None
) -> Built:
    """Replace the VAE by TAESD when ``vae=tiny``.

    The TAESD weights are seeded random ones when ``random`` (default: when the other networks are random),
    else the published ones from ``args['taesd']``.
    """
    if args.get("vae") != "tiny":
        return built
    if random if random is not None else built.weights == RANDOM:
        seed = int(args.get("weights_seed") or 0) if seed is None else seed
        built.components.vae = random_taesd(seed, args.get("size", "full"), device)
        built.sources["vae"] = {"architecture": "taesd", "weights": RANDOM}
        return built
    from diffusers import AutoencoderTiny

    snap = fetch(args.get("taesd") or TAESD_REPO, MODEL_FILES, None, "taesd")
    built.components.vae = _load(
        "TAESD decoder", snap, lambda: AutoencoderTiny.from_pretrained(snap.path, use_safetensors=True), "taesd"
    )
    built.sources["vae"] = {"architecture": "taesd", **snap.provenance()}
    if snap.toy:
        built.weights = RANDOM
    return built


def build_sd(
    args: Mapping[str, Any],
    method: str,
    *,
    arch: str,
    default_weights: str | None,
    base_repo: str | None = None,
    device: Any = None,
) -> Built:
    """The components of an SD-style method from its options: random, or UNet + base networks from the hub.

    ``default_weights`` is the repository of the method's published weights; ``base_repo`` (default: the same
    repository) provides the text encoder, tokenizer, VAE and scheduler.
    """
    if wants_random(args, method):
        built = random_components(arch, args, device)
    else:
        weights = args.get("weights") or default_weights
        if not weights:
            raise BenchError(f"method {method!r} needs weights=HUB_ID_OR_DIRECTORY (or weights=random)")
        built = pretrained_components(weights, base_repo or weights, args.get("revision"), "weights", "base")
    return with_tiny_decoder(built, args, device)


def sd_provenance(gen: Any) -> dict[str, Any]:
    """What identifies the networks of an SD-style generator built by :func:`build_sd` (``gen.built``): weights
    kind, architecture, decoder, compile setting, resolved revision, sources and runtime settings."""
    built: Built | None = getattr(gen, "built", None)
    random = gen.args.get("weights") == RANDOM or gen.args.get("size") == "tiny"
    sources = built.sources if built is not None else {}
    return {
        "weights": built.weights if built is not None else (RANDOM if random else "pretrained"),
        "architecture": gen.arch if gen.args.get("size") != "tiny" else f"{gen.arch}-toy",
        "vae": gen.args.get("vae"),
        "compile": gen.args.get("compile"),
        "revision": sources.get("unet", {}).get("revision") or gen.args.get("revision"),
        "sources": sources,
        "runtime": getattr(gen, "runtime", {}),
    }
