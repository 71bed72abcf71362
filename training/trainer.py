"""The distillation loop on accelerate: VSD student updates alternating with LoRA-teacher updates.

One training step (``gradient_accumulation_steps`` micro-batches each):

1. student update: ``x0 = f(z, y)`` at t = 999; a timestep ``t`` and noise give ``x_t``; the frozen teacher
   (LoRA adapter disabled, classifier-free guidance) and the LoRA teacher (adapter enabled, conditional) predict
   epsilon without gradient; the surrogate loss passes ``w(t) (eps_teacher - eps_lora)`` into the student,
   plus the optional clamped CLIP / HPS losses and image regularisation;
2. ``lora_teacher_steps`` LoRA-teacher updates with the diffusion loss on the detached ``x0`` of step 1.

Prompts, noise and timesteps come from generators seeded by ``(seed, step, micro-batch, process)``, so a
resumed run replays exactly what an uninterrupted one would have done. Checkpoints (``checkpoint-<step>``)
hold the trainable weights (safetensors), optimizer, scheduler and RNG states through ``accelerator.save_state``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from training.config import TrainConfig, to_toml

STUDENT_FILE = "student.safetensors"
LORA_TEACHER_FILE = "lora_teacher.safetensors"
EMA_FILE = "student_ema.safetensors"
STATE_FILE = "training_state.json"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_NOISE, _LORA, _REG = 0, 1, 1000


class EMA:
    """Exponential moving average of named parameters, kept in float32."""

    def __init__(self, params: dict[str, Any], decay: float) -> None:
        self.decay = float(decay)
        self.shadow = {n: p.detach().float().clone() for n, p in params.items()}

    def update(self, params: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for name, p in params.items():
                self.shadow[name].lerp_(p.detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise BenchError(f"EMA checkpoint lacks {len(missing)} tensors (e.g. {sorted(missing)[0]})")
        for name in self.shadow:
            self.shadow[name].copy_(state[name])


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``checkpoint-<step>`` directories under ``output_dir``, oldest first."""
    root = Path(output_dir)
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = CHECKPOINT_RE.match(child.name)
            if m and child.is_dir() and (child / STATE_FILE).is_file():
                found.append((int(m.group(1)), child))
    return sorted(found)


def resolve_checkpoint(spec: str | None, output_dir: str | Path) -> Path | None:
    """``latest`` -> newest checkpoint of ``output_dir`` (None when there is none); a path -> that checkpoint."""
    if not spec:
        return None
    if spec == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(spec)
    if not path.is_dir() and (Path(output_dir) / spec).is_dir():
        path = Path(output_dir) / spec
    if not (path / STATE_FILE).is_file():
        raise BenchError(f"{spec!r} is not a checkpoint directory (no {STATE_FILE}); use --resume latest or a "
                         "checkpoint-<step> directory")
    return path


def _save_tensors(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path))


def _load_into(params: dict[str, Any], path: Path, what: str) -> None:
    import torch
    from safetensors.torch import load_file

    if not path.is_file():
        raise BenchError(f"checkpoint {path.parent} has no {path.name}; it was not written by this trainer")
    state = load_file(str(path))
    if set(state) != set(params):
        extra, missing = sorted(set(state) - set(params)), sorted(set(params) - set(state))
        raise BenchError(
            f"the {what} in {path.parent} does not match this run ({len(missing)} missing, {len(extra)} unexpected "
            f"tensors, e.g. {(missing or extra)[0]}); was it trained with other settings?"
        )
    with torch.no_grad():
        for name, p in params.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise BenchError(f"the {what} tensor {name} has shape {tuple(state[name].shape)} in the checkpoint, "
                                 f"{tuple(p.shape)} in this run")
            p.copy_(state[name])


class Trainer:
    """Owns the accelerator, the models and the loop. ``Trainer(config, out).train()`` runs a whole job."""

    def __init__(self, config: TrainConfig, output_dir: str | Path, resume: str | None = None) -> None:
        self.config = config
        self.output_dir = Path(output_dir)
        self.resume = resume
        self.step = 0
        self._csv_keys: list[str] | None = None

    # -- set-up -----------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        from training.models import build_models, check_cached, trainable_state, weight_dtype
        from training.prompts import PromptStream, load_image_text_pairs, load_prompts

        cfg = self.config
        log_with = cfg.log_with
        if log_with == "auto":
            try:
                import tensorboard  # noqa: F401

                log_with = "tensorboard"
            except ImportError:
                log_with = "csv"
        elif log_with == "tensorboard":
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise BenchError("log_with=tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.log_with = log_with
        self.prompts = load_prompts(cfg.prompts, field=cfg.prompt_field, dedup=cfg.dedup) if cfg.prompts else None
        if self.prompts is None:
            raise BenchError("no prompt files given: --set prompts=journeydb.jsonl,laion.csv (or builtin:demo)")
        self.pairs = load_image_text_pairs(cfg.image_reg_data, cfg.prompt_field) if cfg.image_reg else None
        check_cached(cfg)
        project = ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs"))
        acc = Accelerator(
            mixed_precision=cfg.mixed_precision,
            log_with="tensorboard" if log_with == "tensorboard" else None,
            project_config=project,
        )
        self.accelerator = acc
        if acc.distributed_type.name in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
            raise BenchError(f"{acc.distributed_type.name} is not supported by this trainer; launch with plain "
                             "multi-GPU (DDP) instead (`accelerate launch --multi_gpu ...`)")
        if cfg.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        m = build_models(cfg, device=acc.device)
        self.models = m
        self.dtype = weight_dtype(cfg.mixed_precision)
        device = acc.device
        for module in (m.text_encoder, m.vae, m.loss_decoder):
            if module is not None:
                module.to(device)
        for scorer in (m.clip, m.hps):
            if scorer is not None:
                scorer.model.to(device)
        self.alpha_bar_T = float(m.alphas_cumprod[-1])
        self.alphas = m.alphas_cumprod.to(device=device, dtype=torch.float32)

        def adamw(params: list[Any], lr: float) -> Any:
            return torch.optim.AdamW(params, lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                     weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)

        opt_s = adamw(list(trainable_state(m.student).values()), cfg.student_lr)
        opt_l = adamw(list(trainable_state(m.teacher).values()), cfg.lora_teacher_lr)
        self.sched_s = self._scheduler(opt_s, cfg.max_steps)
        self.sched_l = self._scheduler(opt_l, cfg.max_steps * cfg.lora_teacher_steps)
        self.student, self.opt_s, self.teacher, self.opt_l = acc.prepare(m.student, opt_s, m.teacher, opt_l)
        acc.register_for_checkpointing(self.sched_s, self.sched_l)
        self.ema = EMA(trainable_state(self._student()), cfg.ema_decay) if cfg.ema else None
        acc.register_save_state_pre_hook(self._save_hook)
        acc.register_load_state_pre_hook(self._load_hook)

        self.stream = PromptStream(self.prompts, cfg.seed, cfg.batch_size, cfg.gradient_accumulation_steps,
                                   acc.num_processes)
        if self.pairs is not None:
            from training.prompts import PromptOrder

            self.pair_order = PromptOrder(len(self.pairs), cfg.seed + 1)
        student = self._student()
        size = student.config.sample_size
        self.latent_shape = (student.config.in_channels, *((size, size) if isinstance(size, int) else size))
        self.vae_factor = 2 ** (len(m.vae.config.block_out_channels) - 1)
        with torch.no_grad():
            self.uncond = self.encode([""])
        self.sample_prompts = (cfg.sample_prompts or self.prompts)[: cfg.num_samples]

    def _scheduler(self, optimizer: Any, total: int) -> Any:
        from diffusers.optimization import get_scheduler

        return get_scheduler(self.config.lr_scheduler, optimizer, num_warmup_steps=self.config.lr_warmup_steps,
                             num_training_steps=total)

    def _student(self) -> Any:
        return self.accelerator.unwrap_model(self.student)

    def _teacher(self) -> Any:
        return self.accelerator.unwrap_model(self.teacher)

    # -- checkpoint hooks (trainable weights only; the frozen weights are rebuilt from the config) --
    def _save_hook(self, models: list[Any], weights: list[Any], output_dir: str) -> None:
        from training.models import trainable_state

        if self.accelerator.is_main_process:
            out = Path(output_dir)
            _save_tensors(trainable_state(self._student()), out / STUDENT_FILE)
            _save_tensors(trainable_state(self._teacher()), out / LORA_TEACHER_FILE)
            if self.ema is not None:
                _save_tensors(self.ema.shadow, out / EMA_FILE)
        weights.clear()

    def _load_hook(self, models: list[Any], input_dir: str) -> None:
        from training.models import trainable_state

        src = Path(input_dir)
        _load_into(trainable_state(self._student()), src / STUDENT_FILE, "student")
        _load_into(trainable_state(self._teacher()), src / LORA_TEACHER_FILE, "LoRA teacher")
        if self.ema is not None:
            if not (src / EMA_FILE).is_file():
                raise BenchError(f"checkpoint {src} has no EMA weights but this run has ema=true")
            _load_into(self.ema.shadow, src / EMA_FILE, "student EMA")
        models.clear()

    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        path = self.output_dir / f"checkpoint-{self.step}"
        acc.save_state(str(path))
        if acc.is_main_process:
            state = {"step": self.step, "config": self.config.to_dict()}
            (path / STATE_FILE).write_text(json.dumps(state, indent=1))
            limit = self.config.checkpoints_total_limit
            if limit is not None:
                for _, old in list_checkpoints(self.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return path

    def load_checkpoint(self, path: Path) -> None:
        state = json.loads((path / STATE_FILE).read_text())
        saved = state.get("config", {})
        for key in ("student_mode", "student_init", "teacher", "student_lora_rank", "lora_teacher_rank", "ema"):
            if key in saved and saved[key] != getattr(self.config, key):
                raise BenchError(f"cannot resume from {path}: it was trained with {key}={saved[key]!r}, "
                                 f"this run has {key}={getattr(self.config, key)!r}")
        self.accelerator.load_state(str(path))
        self.step = int(state["step"])

    # -- pieces of a step ---------------------------------------------------------------------------
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

    def vsd_loss(self, x0: Any, cond: Any, gen: Any) -> Any:
        """The VSD surrogate loss of ``x0`` (teacher and LoRA teacher evaluated without gradient)."""
        import torch

        from training import vsd

        cfg, teacher = self.config, self._teacher()
        b = x0.shape[0]
        t = vsd.sample_timesteps(b, cfg.t_min, cfg.t_max, generator=gen, device=x0.device)
        noise = self.randn(tuple(x0.shape), gen)
        a = vsd.gather(self.alphas, t, x0.float())
        with torch.no_grad():
            x_t = vsd.add_noise(x0.detach().float(), noise, a).to(self.dtype)
            kind = self.models.teacher_prediction
            teacher.disable_adapters()
            try:
                if cfg.guidance_scale == 1.0:
                    eps_teacher = vsd.eps_from_prediction(x_t, teacher(x_t, t, encoder_hidden_states=cond).sample, a, kind)
                else:
                    pred = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                   encoder_hidden_states=torch.cat([self.uncond.expand(b, -1, -1), cond])).sample
                    eps_u, eps_c = (vsd.eps_from_prediction(x_t, p, a, kind) for p in pred.chunk(2))
                    eps_teacher = vsd.guided(eps_u, eps_c, cfg.guidance_scale)
            finally:
                teacher.enable_adapters()
            eps_lora = vsd.eps_from_prediction(x_t, teacher(x_t, t, encoder_hidden_states=cond).sample, a, kind)
        return vsd.vsd_surrogate_loss(x0, eps_teacher, eps_lora, vsd.weighting(a, cfg.weighting), cfg.loss_reduction)

    def real_batch(self, step: int, micro: int) -> tuple[Any, list[str]]:
        """Latents and captions of the real image-text pairs for this (step, micro-batch)."""
        import numpy as np
        import torch
        from PIL import Image

        cfg = self.config
        n = cfg.image_reg_batch_size
        start = ((step * cfg.gradient_accumulation_steps + micro) * self.accelerator.num_processes
                 + self.accelerator.process_index) * n
        h, w = (s * self.vae_factor for s in self.latent_shape[1:])
        images, captions = [], []
        for i in self.pair_order.indices(start, n):
            path, caption = self.pairs[i]
            try:
                img = Image.open(path).convert("RGB")
            except OSError as exc:
                raise BenchError(f"cannot read regularisation image {path}: {exc}") from None
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((w, h), Image.LANCZOS)
            images.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
            captions.append(caption)
        pixels = torch.stack(images).to(self.accelerator.device, self.dtype)
        vae = self.models.vae
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        return latents.float(), captions

    def train_step(self) -> dict[str, float]:
        """Run one optimisation step (student update, then LoRA-teacher updates); returns its metrics."""
        import torch

        from methods.onestep import latents_to_images
        from training import vsd
        from training.clip_loss import loss_weight
        from training.models import trainable_state

        cfg, acc, m = self.config, self.accelerator, self.models
        step, accum = self.step, cfg.gradient_accumulation_steps
        rank = acc.process_index
        clip_w = loss_weight(step, cfg.max_steps, cfg.clip_weight, cfg.clip_schedule) if m.clip else 0.0
        hps_w = loss_weight(step, cfg.max_steps, cfg.hps_weight, cfg.hps_schedule) if m.hps else 0.0
        sums: dict[str, float] = {}

        def add(key: str, value: Any) -> None:
            sums[key] = sums.get(key, 0.0) + float(value) / accum

        stash = []
        for micro in range(accum):
            gen = self.generator(step, micro, _NOISE)
            prompts = self.stream.batch(step, micro, rank)
            cond = self.encode(prompts)
            z = self.randn((cfg.batch_size, *self.latent_shape), gen)
            sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(self.student)
            with sync:
                with acc.autocast():
                    if self.pairs is not None:
                        real, captions = self.real_batch(step, micro)
                        reg_gen = self.generator(step, micro, _REG)
                        z_real = vsd.add_noise(real, self.randn(tuple(real.shape), reg_gen), self.alpha_bar_T)
                        x0_all = self.student_x0(self.student, torch.cat([z, z_real]),
                                                 torch.cat([cond, self.encode(captions)]))
                        x0, x0_real = x0_all[: cfg.batch_size], x0_all[cfg.batch_size:]
                    else:
                        x0 = self.student_x0(self.student, z, cond)
                    loss_vsd = self.vsd_loss(x0, cond, gen)
                    loss = loss_vsd
                    add("loss_vsd", loss_vsd.detach())
                    if m.clip is not None or m.hps is not None:
                        images = latents_to_images(m.loss_decoder, x0.to(self.dtype))
                        if m.clip is not None:
                            loss_clip = m.clip(images, prompts).mean()
                            loss = loss + clip_w * loss_clip
                            add("loss_clip", loss_clip.detach())
                        if m.hps is not None:
                            loss_hps = m.hps(images, prompts).mean()
                            loss = loss + hps_w * loss_hps
                            add("loss_hps", loss_hps.detach())
                    if self.pairs is not None:
                        loss_reg = vsd.diffusion_loss(x0_real, real)
                        loss = loss + cfg.image_reg_weight * loss_reg
                        add("loss_reg", loss_reg.detach())
                acc.backward(loss / accum)
            stash.append((x0.detach().float(), cond))
        student_params = list(trainable_state(self._student()).values())
        if cfg.max_grad_norm > 0:
            sums["grad_norm_student"] = float(acc.clip_grad_norm_(student_params, cfg.max_grad_norm))
        self.opt_s.step()
        self.sched_s.step()
        self.opt_s.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(trainable_state(self._student()))

        lora_params = list(trainable_state(self._teacher()).values())
        for k in range(cfg.lora_teacher_steps):
            for micro, (x0, cond) in enumerate(stash):
                gen = self.generator(step, micro, _LORA + k)
                sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(self.teacher)
                with sync:
                    with acc.autocast():
                        t = vsd.sample_timesteps(x0.shape[0], cfg.t_min, cfg.t_max, generator=gen, device=x0.device)
                        noise = self.randn(tuple(x0.shape), gen)
                        a = vsd.gather(self.alphas, t, x0)
                        x_t = vsd.add_noise(x0, noise, a).to(self.dtype)
                        pred = self.teacher(x_t, t, encoder_hidden_states=cond).sample
                        target = vsd.diffusion_target(x0, noise, a, m.teacher_prediction)
                        loss_lora = vsd.diffusion_loss(pred, target)
                    acc.backward(loss_lora / accum)
                sums["loss_lora"] = sums.get("loss_lora", 0.0) + float(loss_lora.detach()) / (accum * cfg.lora_teacher_steps)
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(lora_params, cfg.max_grad_norm)
            self.opt_l.step()
            self.sched_l.step()
            self.opt_l.zero_grad(set_to_none=True)

        self.step += 1
        metrics = dict(sums)
        if m.clip is not None:
            metrics["clip_weight"] = clip_w
        if m.hps is not None:
            metrics["hps_weight"] = hps_w
        metrics["lr_student"] = self.sched_s.get_last_lr()[0]
        metrics["lr_lora_teacher"] = self.sched_l.get_last_lr()[0]
        return metrics

    # -- logging and samples ------------------------------------------------------------------------
    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        import torch

        acc = self.accelerator
        if acc.num_processes == 1:
            return metrics
        keys = sorted(metrics)
        values = acc.reduce(torch.tensor([metrics[k] for k in keys], device=acc.device), reduction="mean")
        return dict(zip(keys, values.tolist(), strict=True))

    def _csv_path(self) -> Path:
        return self.output_dir / "metrics.csv"

    def _truncate_csv(self, last_step: int) -> None:
        path = self._csv_path()
        if not path.is_file():
            return
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
            keys = list(rows[0]) if rows else None
        kept = [r for r in rows if int(r["step"]) <= last_step]
        with open(path, "w", newline="") as fh:
            if keys:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(kept)
        self._csv_keys = keys

    def log(self, metrics: dict[str, float]) -> None:
        acc = self.accelerator
        if not acc.is_main_process:
            return
        row = {"step": self.step, **{k: f"{v:.6g}" for k, v in sorted(metrics.items())}}
        path = self._csv_path()
        if self._csv_keys is None:
            self._csv_keys = list(row)
            if path.is_file() and path.stat().st_size:
                with open(path, newline="") as fh:
                    self._csv_keys = next(csv.reader(fh))
        new = not path.is_file() or path.stat().st_size == 0
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._csv_keys, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.log_with == "tensorboard":
            acc.log(metrics, step=self.step)

    def save_samples(self) -> Path | None:
        """Decode the student's outputs for fixed noise and prompts into ``samples/step-<step>.png``."""
        import torch
        from torchvision.utils import save_image

        from methods.onestep import latents_to_images
        from training.prompts import derived_seed

        if not self.accelerator.is_main_process:
            return None
        n = len(self.sample_prompts)
        gen = torch.Generator().manual_seed(derived_seed(self.config.seed, 0x5A3B1E))
        z = torch.randn((n, *self.latent_shape), generator=gen).to(self.accelerator.device)
        with torch.no_grad(), self.accelerator.autocast():
            x0 = self.student_x0(self._student(), z, self.encode(self.sample_prompts))
            images = latents_to_images(self.models.vae, x0.to(self.dtype)).float().cpu()
        path = self.output_dir / "samples" / f"step-{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(images, str(path), nrow=max(1, int(math.ceil(math.sqrt(n)))))
        return path

    # -- the job ----------------------------------------------------------------------------------
    def train(self, export: bool = True) -> Path:
        """Run (or resume) the job up to ``max_steps`` and export the student; returns the export dir."""
        from tqdm.auto import tqdm

        cfg = self.config
        checkpoint = resolve_checkpoint(self.resume, self.output_dir)
        if checkpoint is None and self.resume != "latest" and list_checkpoints(self.output_dir):
            raise BenchError(f"{self.output_dir} already holds checkpoints; pass --resume latest to continue that run "
                             "or choose another --output-dir")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.setup()
        acc = self.accelerator
        if self.resume == "latest" and checkpoint is None and acc.is_main_process:
            print(f"training: no checkpoint in {self.output_dir}; starting from step 0")
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        if acc.is_main_process:
            (self.output_dir / "config.toml").write_text(to_toml(cfg))
            if checkpoint is not None:
                self._truncate_csv(self.step)
            elif self._csv_path().is_file():
                self._csv_path().unlink()
        if self.log_with == "tensorboard":
            flat = {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in cfg.to_dict().items()}
            acc.init_trackers("distill", config=flat)
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="distill", dynamic_ncols=True,
                   disable=not (acc.is_main_process and cfg.progress_bar))
        while self.step < cfg.max_steps:
            started = time.perf_counter()
            metrics = self.train_step()
            metrics["step_time_s"] = time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(vsd=f"{metrics['loss_vsd']:.3g}", lora=f"{metrics['loss_lora']:.3g}", refresh=False)
            last = self.step == cfg.max_steps
            if cfg.log_every and (self.step % cfg.log_every == 0 or last):
                self.log(self._reduce(metrics))
            if cfg.sample_every and (self.step % cfg.sample_every == 0 or last):
                self.save_samples()
            if cfg.checkpoint_every and (self.step % cfg.checkpoint_every == 0 or last):
                self.save_checkpoint()
        bar.close()
        out = self.output_dir
        if export:
            from training.export import export_trainer

            out = export_trainer(self)
        acc.wait_for_everyone()
        if self.log_with == "tensorboard":
            acc.end_training()
        return out
