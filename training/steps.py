"""Pieces of a distillation step: seeded generators, text encoding, the student's x0, the VSD loss, the
LoRA-teacher loss and the real image batch of the image regulariser. Mixed into :class:`training.trainer.Trainer`,
whose ``setup`` provides the attributes used here (``config``, ``accelerator``, ``models``, ``teacher`` ...).
"""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError

#: Probability of the empty prompt in the LoRA teacher's diffusion loss (``lora_teacher=swiftbrush``).
LORA_UNCOND_PROB = 0.1


class StepPieces:
    """The loss terms and random draws of one step (a mixin: no state of its own)."""

    config: Any
    accelerator: Any
    models: Any
    teacher: Any
    uncond: Any
    alphas: Any
    alpha_bar_T: float
    teacher_dtype: Any
    dtype: Any

    def _teacher(self) -> Any:
        return self.accelerator.unwrap_model(self.teacher)

    def generator(self, step: int, micro: int, purpose: int) -> Any:
        import torch

        from training.prompts import derived_seed

        rank = self.accelerator.process_index
        device = self.accelerator.device
        gen = torch.Generator(device=device if device.type == "cuda" else "cpu")
        return gen.manual_seed(derived_seed(self.config.seed, step, micro, rank, purpose))

    def randn(self, shape: tuple[int, ...], gen: Any) -> Any:
        import torch

        return torch.randn(shape, generator=gen, device=gen.device).to(self.accelerator.device)

    def encode(self, prompts: list[str]) -> Any:
        import torch

        with torch.no_grad(), self.accelerator.autocast():
            ids = self.models.tokenize(prompts).to(self.accelerator.device)
            return self.models.text_encoder(ids)[0]

    def student_x0(self, model: Any, z: Any, cond: Any) -> Any:
        import torch

        from methods.onestep import ONE_STEP_TIMESTEP, x0_from_prediction

        t = torch.full((z.shape[0],), ONE_STEP_TIMESTEP, device=z.device, dtype=torch.long)
        pred = model(z, t, encoder_hidden_states=cond).sample
        return x0_from_prediction(z, pred.float(), self.alpha_bar_T, self.models.student_prediction)

    def predict_eps(self, x_t: Any, t: Any, cond: Any, alpha: Any, guided: bool) -> Any:
        """Epsilon of the teacher UNet as it is now (adapter on or off), with classifier-free guidance if asked."""
        import torch

        from training import vsd

        cfg, teacher, kind = self.config, self._teacher(), self.models.teacher_prediction
        if not guided or cfg.guidance_scale == 1.0:
            return vsd.eps_from_prediction(x_t, teacher(x_t, t, encoder_hidden_states=cond).sample, alpha, kind)
        b = x_t.shape[0]
        pred = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]),
                       encoder_hidden_states=torch.cat([self.uncond.expand(b, -1, -1), cond])).sample
        eps_u, eps_c = (vsd.eps_from_prediction(x_t, p, alpha, kind) for p in pred.chunk(2))
        return vsd.guided(eps_u, eps_c, cfg.guidance_scale)

    def vsd_loss(self, x0: Any, cond: Any, gen: Any) -> Any:
        """The VSD surrogate loss of ``x0`` (teacher and LoRA teacher evaluated without gradient)."""
        import torch

        from training import vsd

        cfg, teacher = self.config, self._teacher()
        t = vsd.sample_timesteps(x0.shape[0], cfg.t_min, cfg.t_max, generator=gen, device=x0.device)
        noise = self.randn(tuple(x0.shape), gen)
        a = vsd.gather(self.alphas, t, x0.float())
        with torch.no_grad():
            x_t = vsd.add_noise(x0.detach().float(), noise, a).to(self.teacher_dtype)
            teacher.disable_adapters()
            try:
                eps_teacher = self.predict_eps(x_t, t, cond, a, guided=True)
            finally:
                teacher.enable_adapters()
            eps_lora = self.predict_eps(x_t, t, cond, a, guided=cfg.lora_teacher == "swiftbrush")
        return vsd.vsd_surrogate_loss(x0, eps_teacher, eps_lora, vsd.weighting(a, cfg.weighting), cfg.loss_reduction)

    def lora_teacher_loss(self, x0: Any, cond: Any, gen: Any) -> Any:
        """Diffusion loss of the LoRA teacher on the detached student samples ``x0``.

        ``swiftbrush``: t ~ U{0..999}, noise, then the empty prompt with probability 0.1 (``null_prompt=batch``,
        the official trainer: one uniform draw for the whole batch, whose captions are all emptied together;
        ``sample``: one draw per sample; all from ``gen``), and ``mse(sqrt(a_t) pred, sqrt(a_t) target)``. ``prolificdreamer``:
        t ~ U{t_min..t_max}, noise, captions, ``mse(pred, target)``.
        """
        import torch

        from training import vsd

        cfg, b = self.config, x0.shape[0]
        official = cfg.lora_teacher == "swiftbrush"
        t_min, t_max = (0, 999) if official else (cfg.t_min, cfg.t_max)
        t = vsd.sample_timesteps(b, t_min, t_max, generator=gen, device=x0.device)
        noise = self.randn(tuple(x0.shape), gen)
        a = vsd.gather(self.alphas, t, x0)
        if official:
            draws = 1 if cfg.null_prompt == "batch" else b
            drop = torch.rand(draws, generator=gen, device=gen.device).to(x0.device).expand(b) < LORA_UNCOND_PROB
            cond = torch.where(drop[:, None, None], self.uncond.expand(b, -1, -1), cond)
        x_t = vsd.add_noise(x0, noise, a).to(self.teacher_dtype)
        pred = self.teacher(x_t, t, encoder_hidden_states=cond).sample
        target = vsd.diffusion_target(x0, noise, a, self.models.teacher_prediction)
        if official:
            return vsd.diffusion_loss(a**0.5 * pred.float(), a**0.5 * target)
        return vsd.diffusion_loss(pred, target)

    def real_batch(self, step: int, micro: int) -> tuple[Any, list[str]]:
        """Latents and captions of the real image-text pairs for this (step, micro-batch)."""
        import numpy as np
        import torch
        from PIL import Image

        from bench.metrics.preprocess import Preprocess

        cfg = self.config
        n = cfg.image_reg_batch_size
        start = ((step * cfg.gradient_accumulation_steps + micro) * self.accelerator.num_processes
                 + self.accelerator.process_index) * n
        h, w = (s * self.vae_factor for s in self.latent_shape[1:])
        if h != w:
            raise BenchError(f"image regularisation needs square images, but the student makes {w}x{h}")
        square = Preprocess(size=w)
        images, captions = [], []
        for i in self.pair_order.indices(start, n):
            path, caption = self.pairs[i]
            try:
                img = Image.open(path).convert("RGB")
            except OSError as exc:
                raise BenchError(f"cannot read regularisation image {path}: {exc}") from None
            pixels8 = square(img)  # the evaluation transform's centre crop and Lanczos resize
            images.append(torch.from_numpy(pixels8.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1))
            captions.append(caption)
        pixels = torch.stack(images).to(self.accelerator.device, self.dtype)
        vae = self.models.vae
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        return latents.float(), captions
