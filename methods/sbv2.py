"""``sbv2``: a SwiftBrush v2 student UNet with SD-Turbo's text encoder, VAE and scheduler, one step at t = 999.

The student is what the training module writes: a directory (or hub id) in the diffusers UNet layout,
``config.json`` + ``diffusion_pytorch_model.safetensors`` (at the root or under ``unet/``), optionally with a
``bench_model.json`` card. The SBv2 release's checkpoint layout is read too: ``DIR/unet_ema/`` (what its
infer.py loads), taken first by ``subfolder=auto``; ``subfolder=unet_ema|unet|none`` picks one, and
``bin_weights=true`` reads a ``diffusion_pytorch_model.bin`` state dict (:mod:`methods.student`). The card::

    {"base": "tiny" | "stabilityai/sd-turbo" | <hub id or directory>, "base_seed": 0}

x0 uses alpha_bar at t = 999 from the scheduler, as the SBv2 release's inference does, unless the card records
``alpha_T`` (a student trained with SwiftBrush's fixed 0.0047 is evaluated with the constant it was trained with).
``base`` names where the frozen networks (tokenizer, text encoder, VAE, scheduler) come from. ``"tiny"`` means
:func:`methods.components.build_tiny_components` with seed ``base_seed`` (the toy set training tests use); any
other value is a diffusers SD repository. Without a card the base is SD-Turbo. ``size=tiny`` or ``base=...`` on
the command line override the card.

From Python::

    from methods.sbv2 import SBv2Generator
    gen = SBv2Generator(weights="runs/student")        # validated like --method-args
    gen.load("cpu", torch.float32)
    images = gen.generate(noise, prompts)              # (B, 3, H, W) in [0, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from bench.errors import BenchError
from bench.model_card import (  # noqa: F401 - write_model_card re-exported
    CARD_NAME,
    card_base_seed,
    read_model_card,
    write_model_card,
)
from bench.options import Option
from methods.components import Components
from methods.loading import (
    BASE_FILES,
    RANDOM,
    Built,
    build_sd,
    fetch,
    on_base,
    with_tiny_decoder,
)
from methods.sd_onestep import SDOneStepGenerator
from methods.student import BIN_FILES, STUDENT_FILES, SUBFOLDERS, load_student_unet, student_subfolder

SD_TURBO = "stabilityai/sd-turbo"
TINY_BASE = "tiny"


class SBv2Generator(SDOneStepGenerator):
    """A SwiftBrush v2 student (``weights=DIR``) on SD-Turbo's frozen networks, or a random one (``weights=random``)."""

    name = "sbv2"
    default_weights = None
    writes_merged = True
    base_repo = SD_TURBO
    options: ClassVar[dict[str, Option]] = {
        **SDOneStepGenerator.options,
        "base": Option(None, str, help="tiny, or hub id / directory of the base networks (overrides bench_model.json)"),
        "subfolder": Option("auto", str, SUBFOLDERS, "where the student UNet is in weights=DIR (auto: unet_ema/, "
                                                     "else unet/, else the root)"),
        "bin_weights": Option(False, bool, help="read a diffusion_pytorch_model.bin state dict when there is no "
                                                "safetensors file (torch.load, weights_only=True)"),
    }

    def build_components(self) -> Components:
        args = self.args
        weights = args.get("weights")
        if weights == RANDOM or (weights is None and args.get("size") == "tiny"):
            self.built = build_sd(args, self.name, arch=self.arch, default_weights=None, device=self.device)
            return self.built.components
        if weights is None:
            raise BenchError(
                "method 'sbv2' needs weights=DIR, a student UNet directory written by training "
                "(config.json + diffusion_pytorch_model.safetensors), or weights=random"
            )
        files = [*STUDENT_FILES, *(BIN_FILES if args.get("bin_weights") else ()), CARD_NAME]
        student = fetch(weights, files, args.get("revision"), "weights")
        card = read_model_card(student.path)
        if card.get("alpha_T") is not None:  # trained with a fixed x0 constant (SwiftBrush's 0.0047): use it
            self.alpha_T = float(card["alpha_T"])
        base = TINY_BASE if args.get("size") == "tiny" else (args.get("base") or card.get("base") or SD_TURBO)
        seed = card_base_seed(card, student.path, int(args.get("weights_seed") or 0))
        unet = load_student_unet(student, args.get("subfolder") or "auto", bool(args.get("bin_weights")))
        if base == TINY_BASE:
            from methods.components import SD_SCHEDULER_CONFIG, build_tiny_components

            parts = build_tiny_components(seed)
            parts.unet = unet
            base_source: dict[str, Any] = {"architecture": "sd21-toy", "weights": RANDOM, "seed": seed}
            # toy base networks have seeded random weights, so the student trained on them is a toy too
            built = Built(parts, dict(SD_SCHEDULER_CONFIG), {"unet": student.provenance()}, RANDOM)
        else:
            snap = fetch(base, BASE_FILES, None, "base")
            built = on_base(snap, unet, "base")
            base_source = snap.provenance()
        built.sources.update(text_encoder=base_source, vae=base_source, base=base, card=card)
        built.sources["unet"] = {**student.provenance(),
                                 "subfolder": student_subfolder(student, args.get("subfolder") or "auto")}
        self.built = with_tiny_decoder(
            built, {**args, "size": "tiny" if base == TINY_BASE else "full"}, self.device,
            random=base == TINY_BASE, seed=seed,
        )
        return self.built.components

    # -- student directories, for merging ----------------------------------------------------------------
    @classmethod
    def merge_adapter(cls, args: dict[str, str]) -> tuple[dict[str, str], Path] | None:
        """``weights=`` a LoRA student's ``lora/`` adapter: built on the export directory that holds it (its base
        networks and card), the adapter fused into its base as the denoiser."""
        from methods.student_dir import lora_adapter_dir

        lora = lora_adapter_dir(args.get("weights"))
        if lora is None:
            return None
        if not (lora.parent / "config.json").is_file():
            raise BenchError(f"{lora} is a LoRA adapter outside an export directory; give the export directory that "
                             "holds it (weights=DIR)")
        return {**args, "weights": str(lora.parent)}, lora

    @classmethod
    def fused_adapter_state(cls, adapter: Path) -> dict[str, Any]:
        from methods.student_dir import load_model

        return load_model(adapter)[1]

    @classmethod
    def write_merged(cls, a: str, b: str, lam: float, output_dir: str, overwrite: bool = False) -> Path:
        """The merged student directory as ``python -m training merge`` writes it (:mod:`methods.student_merge`)."""
        from methods.student_merge import merge_models

        return merge_models(a, b, lam, output_dir, overwrite=overwrite)
