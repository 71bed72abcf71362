"""Methods that are a published model plus the authors' own inference settings (a :class:`Recipe`).

A recipe is data: the pipeline repository, an optional replacement denoiser file (the distilled UNet that the
model card loads into the base pipeline), the scheduler class and config overrides, steps, explicit
timesteps, guidance, native resolution, extra call arguments, the licence and the file the settings were read
from. :class:`RecipeGenerator` runs any recipe through the stock diffusers pipeline of its family, split into
the usual stages:

``encode_prompts``  the pipeline's own ``encode_prompt`` (no classifier-free branch: guidance is off or embedded)
``denoise``         the pipeline called with those embeddings, the caller's noise as ``latents`` and
                    ``output_type="latent"``: the scheduler, timesteps and conditioning are the pipeline's own
``decode``          the family's decoder (SD / SDXL / FLUX / DC-AE VAE) from the returned latents

so a run equals the reference pipeline called with the card's arguments on the same noise (the tests check it).
Stochastic multi-step samplers (LCM, TCD) draw their extra noise from generators seeded by each sample's own
initial noise, so a sample still depends only on (seed, index).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bench.errors import BenchError
from bench.generator import Generator
from bench.options import Option
from methods.loading import RANDOM, Snapshot, _load, fetch, weights_of


@dataclass(frozen=True)
class Recipe:
    """A published model and how its authors sample from it."""

    #: Repository of the diffusers pipeline (the base whose text encoders, VAE and scheduler config are used).
    repo: str
    #: Model family (a name :func:`methods.families_dit.family_of` knows).
    family: str
    #: Native resolution in pixels (square); 0: the pipeline's default (denoiser sample size x VAE factor).
    resolution: int
    steps: int = 1
    guidance: float = 0.0
    #: Explicit timesteps passed to the pipeline (None: the scheduler's own spacing for ``steps``).
    timesteps: tuple[int, ...] | None = None
    #: diffusers scheduler class that replaces the pipeline's (None: keep it) and config overrides.
    scheduler: str | None = None
    scheduler_overrides: Mapping[str, Any] = field(default_factory=dict)
    #: Repository and file of a replacement denoiser state dict (None: the pipeline's own denoiser).
    unet_repo: str | None = None
    unet_file: str | None = None
    #: A LoRA file in ``unet_repo`` that the card loads into the pipeline and fuses (``fuse_lora()``, scale 1).
    lora_file: str | None = None
    #: The scheduler config comes from the denoiser's repository (``scheduler/scheduler_config.json``).
    student_scheduler: bool = False
    #: Further keyword arguments of the pipeline call (eta, max_sequence_length, ...).
    call: Mapping[str, Any] = field(default_factory=dict)
    #: Where the settings come from (model card or inference code).
    source: str = ""
    licence: str = ""
    #: The licence forbids commercial use / the hub repository is gated (accept its terms before downloading).
    non_commercial: bool = False
    gated: bool = False


def recipe_info(recipe: Recipe, nfe: int | None = None, variants: Mapping[str, Recipe] | None = None,
                **extra: Any) -> dict[str, Any]:
    """What ``bench list methods --json`` shows for a recipe method (registration keywords)."""
    return {"nfe": nfe or recipe.steps, "licence": recipe.licence, "non_commercial": recipe.non_commercial,
            "gated": recipe.gated, "model": recipe.unet_repo or recipe.repo,
            "settings_source": recipe.source, **({"variants": sorted(variants)} if variants else {}), **extra}


def sample_generators(noise: Any) -> list[Any]:
    """One torch.Generator per sample, seeded by a hash of that sample's initial noise (batch-independent)."""
    import torch

    gens = []
    for row in noise.detach().to("cpu", torch.float32).contiguous():
        digest = hashlib.sha256(row.numpy().tobytes()).digest()
        gens.append(torch.Generator("cpu").manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1)))
    return gens


def load_state_file(path: Path) -> dict[str, Any]:
    """A state dict from safetensors, or from a torch file holding tensors only (``weights_only=True``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def fuse_lora(pipe: Any, state: dict[str, Any]) -> None:
    """Load a LoRA state dict into ``pipe``, fuse it into the weights at scale 1 and drop the adapters (the
    networks are then plain modules holding the fused weights)."""
    try:
        pipe.load_lora_weights(dict(state))
    except (ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(f"cannot load the LoRA weights into {type(pipe).__name__}: {first}") from exc
    pipe.fuse_lora()
    pipe.unload_lora_weights()


def steps_option(default: int, help: str) -> Option:
    """``steps=`` of a method whose card documents a range of step counts."""
    return Option(default, int, help=help, minimum=1)


RECIPE_OPTIONS: dict[str, Option] = {
    "weights": Option(None, str, help="hub id or local directory of the pipeline (default: the recipe's)"),
    "unet": Option(None, str, help="hub id or directory holding the recipe's denoiser file (default: the recipe's)"),
    "revision": Option(None, str, help="hub branch, tag or commit of the pipeline (the resolved commit is recorded)"),
    "size": Option("full", str, ("full", "tiny"), help="tiny: toy-size networks of the same family (random weights)"),
    "weights_seed": Option(0, int, help="seed of random weights", minimum=0),
}


class RecipeGenerator(Generator):
    """A :class:`Recipe` run through its family's diffusers pipeline, stage by stage."""

    recipe: ClassVar[Recipe]
    #: Named alternatives (``variant=``), e.g. the 2/4/8-step checkpoints of a few-step family.
    variants: ClassVar[dict[str, Recipe]] = {}
    options: ClassVar[dict[str, Option]] = RECIPE_OPTIONS

    # -- set-up -----------------------------------------------------------------------------------------
    @property
    def active(self) -> Recipe:
        """The recipe in use: ``variant=`` picks one of :attr:`variants`; ``steps=`` and ``guidance=`` (where the
        method declares them) replace the recipe's."""
        name = self.args.get("variant")
        recipe = self.variants[name] if name else self.recipe
        changes = {k: type(getattr(recipe, k))(self.args[k]) for k in ("steps", "guidance") if k in self.options}
        return self.adjust(dataclasses.replace(recipe, **changes) if changes else recipe)

    def adjust(self, recipe: Recipe) -> Recipe:
        """Settings that follow from the chosen ones (default: none)."""
        return recipe

    def load(self, device: Any, dtype: Any) -> None:
        import torch

        from methods.families_dit import family_of
        from methods.onestep import place

        self.device, self.dtype = torch.device(device), dtype
        recipe = self.active
        self.family = family_of(recipe.family)
        if self.args.get("size") == "tiny":
            if self.args.get("weights") or self.args.get("unet"):
                raise BenchError(f"method {self.name!r}: size=tiny builds random toy networks; drop weights=/unet=")
            seed = int(self.args.get("weights_seed") or 0)
            components = self.family.toy_components(seed, recipe)
            self.sources: dict[str, Any] = {"architecture": f"{recipe.family}-toy", "seed": seed}
            self.weights = RANDOM
            self.toy = True
        else:
            components = self._published(recipe)
            self.toy = self.weights == RANDOM
        if recipe.lora_file:
            lora = self._lora_state(recipe, components)
        for name, module in components.items():
            if isinstance(module, torch.nn.Module):
                place(module, self.device, self.family.module_dtype(name, module, dtype))
        self.pipe = self.family.pipeline_class()(**components)
        if recipe.lora_file:
            fuse_lora(self.pipe, lora)
        self.pipe.set_progress_bar_config(disable=True)
        self.scheduler = self.pipe.scheduler

    def _published(self, recipe: Recipe) -> dict[str, Any]:
        """The pipeline's components from the hub (or a directory), with the recipe's denoiser and scheduler."""
        base_ref = self.args.get("weights") or recipe.repo
        family = self.family
        skip = family.denoiser if recipe.unet_file else None
        base = self._base_snapshot = fetch(base_ref, family.files(skip), self.args.get("revision"), "weights")
        components = family.load_components(base, skip)
        snaps: list[Snapshot] = [base]
        self.sources = {"pipeline": base.provenance()}
        if recipe.unet_file:
            snap = self._student(recipe, base_ref, components)
            snaps.append(snap)
        self.weights = weights_of(*snaps)
        if recipe.scheduler or recipe.scheduler_overrides:
            from methods.loading import scheduler_from_config

            config = {**dict(components["scheduler"].config), **recipe.scheduler_overrides}
            components["scheduler"] = scheduler_from_config(config, recipe.scheduler)
        return components

    def _lora_state(self, recipe: Recipe, components: dict[str, Any]) -> dict[str, Any]:
        """The recipe's LoRA weights: the published file, or seeded random ones for toy networks."""
        if getattr(self, "toy", False) and self.args.get("size") == "tiny":
            from methods.families import toy_lora_state

            return toy_lora_state(components[self.family.denoiser], int(self.args.get("weights_seed") or 0) + 7)
        ref = self.args.get("unet") or recipe.unet_repo or recipe.repo
        snap = fetch(ref, [recipe.lora_file], None, "unet")
        path = snap.path / recipe.lora_file
        if not path.is_file():
            raise BenchError(f"unet={ref}: {recipe.lora_file} is missing there; give the folder that holds it")
        self.sources["lora"] = {**snap.provenance(), "file": recipe.lora_file}
        self.weights = weights_of(self._base_snapshot, snap)
        return _load("LoRA weights", snap, lambda: load_state_file(path), "unet")

    def _student(self, recipe: Recipe, base_ref: str, components: dict[str, Any]) -> Snapshot:
        """Build the denoiser (config beside the weights file, else the base's) and load the recipe's weights
        into it; with ``student_scheduler`` the scheduler config comes from the same repository."""
        import json

        family = self.family
        unet_ref = self.args.get("unet") or recipe.unet_repo or base_ref
        folder = str(Path(recipe.unet_file).parent)
        patterns = [recipe.unet_file] + ([f"{folder}/config.json"] if folder != "." else [])
        patterns += ["scheduler/scheduler_config.json"] if recipe.student_scheduler else []
        snap = fetch(unet_ref, patterns, None, "unet")
        path = snap.path / recipe.unet_file
        if not path.is_file():
            raise BenchError(f"unet={unet_ref}: {recipe.unet_file} is missing there; give the folder that holds it")
        own_config = (path.parent / "config.json").is_file() and folder != "."
        config_snap = snap if own_config else self._base_snapshot
        config_dir = config_snap.path / (folder if own_config else family.denoiser)
        denoiser = _load(family.denoiser, config_snap, lambda: family.denoiser_from_config(config_dir))
        state = _load("denoiser weights", snap, lambda: load_state_file(path), "unet")
        try:
            denoiser.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise BenchError(f"{recipe.unet_file} from {unet_ref} does not fit the {family.denoiser} of "
                             f"{base_ref}: {first}") from exc
        components[family.denoiser] = denoiser
        if recipe.student_scheduler:
            from methods.loading import scheduler_from_config

            config_path = snap.path / "scheduler" / "scheduler_config.json"
            if not config_path.is_file():
                raise BenchError(f"unet={unet_ref}: scheduler/scheduler_config.json is missing there")
            components["scheduler"] = scheduler_from_config(json.loads(config_path.read_text()))
        self.sources[family.denoiser] = {**snap.provenance(), "file": recipe.unet_file}
        return snap

    # -- shapes -----------------------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        """The recipe's native resolution; toy networks (and resolution 0) run at the pipeline's default size."""
        size = self.active.resolution
        if getattr(self, "toy", False):
            size = self.family.toy_resolution(self.pipe)
        elif not size:
            size = self.family.default_resolution(self.pipe)
        return (size, size)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        h, w = self.image_size
        return self.family.latent_shape(self.pipe, h, w)

    @property
    def num_function_evaluations(self) -> int:
        recipe = self.active
        return len(recipe.timesteps) if recipe.timesteps else recipe.steps

    # -- stages -----------------------------------------------------------------------------------------
    def truncated_prompts(self, prompts: Sequence[str]) -> tuple[int, int] | None:
        return self.family.truncation(self.pipe, prompts, self.active)

    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        import torch

        with torch.inference_mode():
            return self.family.encode(self.pipe, list(prompts), self.device, self.active)

    def call_arguments(self, noise: Any) -> dict[str, Any]:
        """The pipeline call of the recipe (without prompts or embeddings) on ``noise``."""
        recipe = self.active
        height, width = (n * self.pipe.vae_scale_factor for n in noise.shape[-2:])  # the native size, or --height
        kwargs: dict[str, Any] = {"num_inference_steps": recipe.steps, "guidance_scale": recipe.guidance,
                                  "height": height, "width": width, **recipe.call}
        if recipe.timesteps:
            kwargs["timesteps"] = list(recipe.timesteps)
        kwargs["latents"] = self.family.pack(self.pipe, noise.to(self.device, self.dtype))
        if self.num_function_evaluations > 1:  # noise of ancestral / consistency steps, per sample
            kwargs["generator"] = sample_generators(noise)
        return kwargs

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        import torch

        with torch.inference_mode():
            call = self.call_arguments(noise)
            out = self.pipe(**conditioning, **call, output_type="latent")
            return self.family.unpack(self.pipe, out.images, call["height"], call["width"])

    def decode(self, latents: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.family.decode(self.pipe, latents)

    def describe(self) -> dict[str, Any]:
        recipe = self.active
        scheduler = getattr(self, "scheduler", None)
        return {
            **super().describe(),
            "weights": getattr(self, "weights", RANDOM if self.args.get("size") == "tiny" else "pretrained"),
            "architecture": recipe.family + ("-toy" if self.args.get("size") == "tiny" else ""),
            "model": recipe.unet_repo or recipe.repo,
            "unet_file": recipe.unet_file,
            "lora_file": recipe.lora_file,
            "steps": recipe.steps,
            "timesteps": list(recipe.timesteps) if recipe.timesteps else None,
            "guidance": recipe.guidance,
            "call": dict(recipe.call),
            "resolution": recipe.resolution,
            "scheduler": type(scheduler).__name__ if scheduler is not None else recipe.scheduler,
            "scheduler_config": dict(scheduler.config) if scheduler is not None else None,
            "settings_source": recipe.source,
            "licence": recipe.licence,
            "non_commercial": recipe.non_commercial,
            "vae": "full",
            "compile": False,
            "revision": (getattr(self, "sources", {}).get("pipeline") or {}).get("revision"),
            "sources": getattr(self, "sources", {}),
        }
