"""The one-step generation path shared by every one-step method (tiny, sd-turbo, swiftbrush, sbv2, instaflow).

z ~ N(0, I) is read as x_T at the last training timestep t = 999. The UNet predicts epsilon (or v), the
clean latent is recovered in closed form, and the VAE decodes it:

    x0 = (z - sqrt(1 - a_bar_t) * eps) / sqrt(a_bar_t)          (epsilon prediction)
    x0 = sqrt(a_bar_t) * z - sqrt(1 - a_bar_t) * v                (v prediction)
    image = VAE.decode(x0 / scaling_factor)

Rectified-flow models (InstaFlow) instead take one Euler step of the learned velocity over the whole
interval, evaluated at t = 1000: x = z + v(z, t).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.errors import BenchError
from bench.generator import Generator
from methods.components import Components

ONE_STEP_TIMESTEP = 999
RECTIFIED_FLOW = "rectified_flow"


def x0_from_prediction(
    x_t: Any, prediction: Any, alpha_bar_t: Any, prediction_type: str = "epsilon"
) -> Any:
    """Clean sample from the network output at a timestep whose cumulative alpha is ``alpha_bar_t``."""
    sqrt_a = alpha_bar_t**0.5
    sqrt_1ma = (1 - alpha_bar_t) ** 0.5
    if prediction_type == "epsilon":
        return (x_t - sqrt_1ma * prediction) / sqrt_a
    if prediction_type == "v_prediction":
        return sqrt_a * x_t - sqrt_1ma * prediction
    if prediction_type == "sample":
        return prediction
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def rectified_flow_step(x: Any, velocity: Any, dt: float = 1.0) -> Any:
    """One Euler step of a rectified flow: ``x + dt * v`` (dt = 1 crosses the whole interval)."""
    return x + dt * velocity


def vae_scale_factor(vae: Any) -> int:
    """Pixels per latent cell of an AutoencoderKL or AutoencoderTiny decoder."""
    config = vae.config
    if hasattr(config, "decoder_block_out_channels"):
        return int(config.upsampling_scaling_factor ** (len(config.decoder_block_out_channels) - 1))
    return 2 ** (len(config.block_out_channels) - 1)


def latents_to_images(vae: Any, latents: Any, chunk: int = 0) -> Any:
    """Decode latents with an SD VAE (or TAESD) into float images in [0, 1], ``chunk`` latents at a time."""
    import torch

    scaling = getattr(vae.config, "scaling_factor", 1.0)
    step = chunk if chunk and chunk > 0 else latents.shape[0]
    parts = [vae.decode(latents[i : i + step] / scaling).sample for i in range(0, latents.shape[0], step)]
    decoded = parts[0] if len(parts) == 1 else torch.cat(parts)
    return (decoded.float() / 2 + 0.5).clamp(0, 1)


def place(module: Any, device: Any, dtype: Any) -> Any:
    """Move a network to ``device`` and ``dtype`` for inference (eval mode, no gradients)."""
    import torch

    # torch's own ``to``: diffusers' override warns about fp32 modules on every dtype cast, even when none exist.
    torch.nn.Module.to(module, device=device, dtype=dtype)
    return module.eval().requires_grad_(False)


class LatentShapes:
    """``noise_shape`` and ``image_size`` of a generator holding ``self.unet`` and ``self.vae``."""

    unet: Any
    vae: Any

    @property
    def noise_shape(self) -> tuple[int, ...]:
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, h, w)

    @property
    def image_size(self) -> tuple[int, int]:
        factor = vae_scale_factor(self.vae)
        _, h, w = self.noise_shape
        return (h * factor, w * factor)


class OneStepGenerator(LatentShapes, Generator):
    """A generator made of SD-style components and one UNet evaluation at ``t = 999``.

    Subclasses provide :meth:`build_components`; everything else is shared. Optional ``--method-args`` read
    here when a subclass declares them: ``channels_last``, ``compile``/``compile_mode``, ``cuda_graphs`` and
    ``decode_chunk``.
    """

    timestep: int | float = ONE_STEP_TIMESTEP
    #: None: the scheduler config's prediction type; ``"rectified_flow"``: x = z + v (one Euler step).
    prediction_type: str | None = None
    #: Cumulative alpha in x0 = (z - sqrt(1 - a) eps) / sqrt(a): None = the scheduler's alpha_bar at ``timestep``.
    alpha_T: float | None = None

    def build_components(self) -> Components:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def load(self, device: Any, dtype: Any) -> None:
        import torch

        self.device, self.dtype = torch.device(device), dtype
        parts = self.build_components()
        self.tokenize = parts.tokenize
        self.text_encoder = place(parts.text_encoder, self.device, dtype)
        self.unet = place(parts.unet, self.device, dtype)
        self.vae = place(parts.vae, self.device, dtype)
        self.scheduler = parts.scheduler
        self.prediction_type = type(self).prediction_type or self.scheduler.config.prediction_type
        if self.prediction_type == RECTIFIED_FLOW:
            self.alpha_bar = None
        elif self.alpha_T is not None:
            self.alpha_bar = float(self.alpha_T)
        else:
            self.alpha_bar = float(self.scheduler.alphas_cumprod[int(self.timestep)])
        self._setup_runtime()

    def merge_constants(self) -> dict[str, float]:
        """The x0 constant alpha_T the student was trained with (merged with its weights; none for flows)."""
        return {} if self.alpha_bar is None else {"alpha_T": self.alpha_bar}

    def load_merge_constants(self, values: dict[str, float]) -> None:
        if set(values) != set(self.merge_constants()):
            raise BenchError(f"method {self.name!r}: merge constants {sorted(values)} do not fit "
                             f"{sorted(self.merge_constants())}")
        if "alpha_T" in values:
            self.alpha_bar = float(values["alpha_T"])

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["alpha_T"] = getattr(self, "alpha_bar", self.alpha_T)
        info["alpha_T_source"] = "scheduler" if self.alpha_T is None else "fixed"
        return info

    def _setup_runtime(self) -> None:
        """Memory format, compilation, CUDA graphs and decode chunking from the method's options."""
        import torch

        from methods.runtime import CudaGraphStage, prepare_modules

        args = self.args
        self.decode_chunk = int(args.get("decode_chunk") or 0)
        modules = {"text_encoder": self.text_encoder, "unet": self.unet, "vae": self.vae}
        self.runtime = prepare_modules(modules, args)
        self._graphs: dict[str, CudaGraphStage] | None = None
        if args.get("cuda_graphs") and self.device.type == "cuda":
            pool = torch.cuda.graph_pool_handle()
            self._graphs = {
                "text_encoder": CudaGraphStage(self._encode_ids, pool),
                "denoiser": CudaGraphStage(self._denoise_latents, pool),
                "decoder": CudaGraphStage(self._decode_latents, pool),
            }
            self.runtime["cuda_graphs"] = True

    @property
    def fixed_batch(self) -> bool:
        runtime = getattr(self, "runtime", {})
        return bool(runtime.get("compile") or runtime.get("cuda_graphs"))

    def graph_failures(self) -> dict[str, list[str]]:
        """Stages whose CUDA-graph capture failed (they ran eagerly), with the reasons."""
        return {k: g.failures for k, g in (self._graphs or {}).items() if g.failures}


    def _run(self, stage: str, fn: Callable[..., Any], *inputs: Any) -> Any:
        graphs = getattr(self, "_graphs", None)
        return graphs[stage](*inputs) if graphs else fn(*inputs)

    # tensor -> tensor bodies of the stages (what CUDA graphs capture)
    def _encode_ids(self, ids: Any) -> Any:
        return self.text_encoder(ids)[0]

    def _denoise_latents(self, z: Any, conditioning: Any) -> Any:
        import torch

        t_dtype = torch.long if isinstance(self.timestep, int) else torch.float32
        t = torch.full((z.shape[0],), self.timestep, device=z.device, dtype=t_dtype)
        pred = self.unet(z, t, encoder_hidden_states=conditioning).sample
        if self.prediction_type == RECTIFIED_FLOW:
            return rectified_flow_step(z, pred)
        return x0_from_prediction(z, pred, self.alpha_bar, self.prediction_type)

    def _decode_latents(self, latents: Any) -> Any:
        return latents_to_images(self.vae, latents, getattr(self, "decode_chunk", 0))

    def truncated_prompts(self, prompts: Sequence[str]) -> tuple[int, int] | None:
        from methods.components import clip_truncation

        return clip_truncation(prompts)

    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        import torch

        with torch.inference_mode():
            ids = self.tokenize(prompts).to(self.device)
            return self._run("text_encoder", self._encode_ids, ids)

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        import torch

        with torch.inference_mode():
            z = noise.to(self.device, self.dtype)
            return self._run("denoiser", self._denoise_latents, z, conditioning)

    def decode(self, latents: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self._run("decoder", self._decode_latents, latents)
