"""``SDOneStepGenerator``: the base class of one-step methods on Stable Diffusion components (SD-Turbo, SwiftBrush,
SBv2, InstaFlow, DMD2's SD 1.5 student), the class a plug-in author subclasses to add one: set the architecture
and repositories (a model is data), or override :meth:`build_components`."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.options import Option
from methods.components import Components
from methods.loading import COMMON_OPTIONS, Built, build_sd, sd_provenance
from methods.onestep import OneStepGenerator

#: Text whose token ids stand for the tokenizer when two models' components are compared.
TOKENIZER_PROBE = "A photo of a cat reading a book, 4k, <|endoftext|> Ünïcödé 123"


class SDOneStepGenerator(OneStepGenerator):
    """A one-step method whose networks are built by :func:`methods.loading.build_sd`.

    Subclasses set the architecture and repositories; ``describe`` reports where every network came from.
    """

    arch: ClassVar[str] = "sd21"
    base_repo: ClassVar[str | None] = None
    options: ClassVar[dict[str, Option]] = {
        **COMMON_OPTIONS,
        "cuda_graphs": Option(False, bool, help="replay each stage as a CUDA graph (CUDA devices only)"),
    }

    def base(self) -> str | None:
        """Repository of the text encoder, tokenizer, VAE and scheduler (default: the weights' own)."""
        return self.args.get("base") or self.base_repo

    # -- merging (bench sweep-merge): the UNet is the denoiser; tokenizer, text encoder, VAE, scheduler the rest
    def denoiser_state(self) -> dict[str, Any]:
        return dict(self.unet.state_dict())

    def load_denoiser_state(self, state: dict[str, Any]) -> None:
        self.unet.load_state_dict(state, strict=True)

    def component_states(self) -> dict[str, dict[str, Any]]:
        scheduler = {k: v for k, v in self.scheduler.config.items() if k == "_class_name" or not k.startswith("_")}
        return {"text_encoder": dict(self.text_encoder.state_dict()), "vae": dict(self.vae.state_dict()),
                "scheduler": scheduler, "tokenizer": {"probe": self.tokenize([TOKENIZER_PROBE])}}

    def load_component_states(self, states: dict[str, dict[str, Any]]) -> None:
        for name in ("text_encoder", "vae"):
            if name in states:
                getattr(self, name).load_state_dict(states[name], strict=True)

    def build_components(self) -> Components:
        self.built: Built = build_sd(
            self.args,
            self.name,
            arch=self.arch,
            default_weights=self.default_weights,
            base_repo=self.base(),
            device=self.device,
        )
        return self.built.components

    def describe(self) -> dict[str, Any]:
        flow = self.prediction_type == "rectified_flow"
        return {
            **super().describe(),
            **sd_provenance(self),
            "steps": 1,
            "guidance": 0.0,
            "timestep": self.timestep,
            "prediction_type": getattr(self, "prediction_type", None),
            "scheduler": "one Euler step (rectified flow)" if flow else "closed-form x0 at the last timestep",
        }
