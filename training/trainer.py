"""The distillation loop on accelerate: VSD student updates alternating with LoRA-teacher updates.

One training step (``gradient_accumulation_steps`` micro-batches each):

1. student update: ``x0 = f(z, y)`` at t = 999; a timestep ``t`` and noise give ``x_t``; the frozen teacher
   (LoRA adapter disabled, classifier-free guidance) and the LoRA teacher (adapter enabled; guided too for
   ``lora_teacher=swiftbrush``, conditional for ``prolificdreamer``) predict epsilon without gradient; the
   surrogate loss passes ``w(t) (eps_teacher - eps_lora)`` into the student, plus the optional clamped CLIP /
   HPS losses and image regularisation;
2. ``lora_teacher_steps`` LoRA-teacher updates with the diffusion loss on the detached ``x0`` of step 1.

Prompts, noise, timesteps, dropped captions and the LoRA initialisation come from generators seeded by the
run's ``seed`` (and ``(step, micro-batch, process)``), so a run is a function of its settings and a resumed run
replays exactly what an uninterrupted one would have done. Checkpoints: :mod:`training.checkpoint`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from training import checkpoint as ckpt
from training.checkpoint import EMA, list_checkpoints, resolve_checkpoint
from training.config import TrainConfig, resolved_alpha_T, to_toml
from training.runlog import RunLog
from training.steps import StepPieces

_NOISE, _LORA, _REG = 0, 1, 1000


def check_launch(num_processes: int, environ: Mapping[str, str]) -> None:
    """Stop when the launcher started several processes but no process group formed (each would train alone)."""
    for key in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        try:
            launched = int(environ.get(key, "1") or 1)
        except ValueError:
            continue
        if launched > num_processes:
            raise BenchError(f"{key}={launched} but this process sees {num_processes} process(es): the launch formed "
                             "no process group; check `accelerate config` (--multi_gpu, --num_processes) and the GPUs")


class Trainer(StepPieces, RunLog):
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
        check_launch(acc.num_processes, os.environ)
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
        alpha_T = resolved_alpha_T(cfg)
        self.alpha_bar_T = alpha_T if alpha_T is not None else float(m.alphas_cumprod[-1])
        self.teacher_dtype = self.dtype if cfg.teacher_precision == "mixed" else torch.float32
        self.alphas = m.alphas_cumprod.to(device=device, dtype=torch.float32)

        def adamw(params: list[Any], lr: float) -> Any:
            return torch.optim.AdamW(params, lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                     weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)

        opt_s = adamw(list(trainable_state(m.student).values()), cfg.student_lr)
        opt_l = adamw(list(trainable_state(m.teacher).values()), cfg.lora_teacher_lr)
        self.sched_s = self._scheduler(opt_s, cfg.max_steps)
        self.sched_l = self._scheduler(opt_l, cfg.max_steps * cfg.lora_teacher_steps)
        self.student, self.opt_s, self.teacher, self.opt_l = acc.prepare(m.student, opt_s, m.teacher, opt_l)
        self.ema = EMA(self._ema_source(), cfg.ema_decay, cfg.ema_rule) if cfg.ema else None

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

    # -- trained state and checkpoints (trainable tensors only; the frozen weights are rebuilt from the config) --
    def _ema_source(self) -> dict[str, Any]:
        """What the EMA averages: the weights of a full student, the fused ``B @ A`` deltas of a LoRA student."""
        from training.models import lora_deltas, trainable_state

        student = self._student()
        return lora_deltas(student) if self.config.student_mode == "lora" else trainable_state(student)

    def trained_state(self, ema: bool = False) -> dict[str, Any]:
        """The student's trained tensors on the CPU in float32: its trainable parameters (``ema=False``) or its
        EMA (full weights, or ``B @ A`` deltas keyed by base weight name for LoRA students)."""
        from training.models import trainable_state

        if ema and self.ema is None:
            raise BenchError("this run keeps no EMA (ema=false)")
        source = self.ema.shadow if ema else trainable_state(self._student())
        return {k: v.detach().float().cpu().clone() for k, v in source.items()}

    def student_module(self) -> Any:
        """The (unwrapped) student UNet."""
        return self._student()

    def save_checkpoint(self) -> Path:
        from training.models import trainable_state

        acc = self.accelerator
        path = self.output_dir / f"checkpoint-{self.step}"
        if acc.is_main_process:
            tmp = self.output_dir / f".checkpoint-{self.step}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            ckpt.save_tensors(trainable_state(self._student()), tmp / ckpt.STUDENT_FILE)
            ckpt.save_tensors(trainable_state(self._teacher()), tmp / ckpt.LORA_TEACHER_FILE)
            if self.ema is not None:
                ckpt.save_tensors(self.ema.shadow, tmp / ckpt.EMA_FILE)
            ckpt.save_optimizers({"student": self.opt_s, "lora_teacher": self.opt_l}, tmp)
            ckpt.save_schedulers({"student": self.sched_s, "lora_teacher": self.sched_l}, tmp)
            ckpt.write_state(tmp, self.step, self.config.to_dict(), self.input_fingerprints())
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
            limit = self.config.checkpoints_total_limit
            if limit is not None:
                for _, old in list_checkpoints(self.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return path

    def input_fingerprints(self) -> dict[str, Any]:
        return ckpt.input_fingerprints(self.prompts, self.pairs, self.accelerator.num_processes)

    def load_checkpoint(self, path: Path) -> None:
        """Restore weights, EMA, optimizer and scheduler states after checking the settings match."""
        from training.models import trainable_state

        state = ckpt.read_state(path)
        ckpt.check_same_settings(state.get("config", {}), self.config.to_dict(), path)
        ckpt.check_same_inputs(state.get("inputs"), self.input_fingerprints(), path)
        ckpt.load_into(trainable_state(self._student()), path / ckpt.STUDENT_FILE, "student")
        ckpt.load_into(trainable_state(self._teacher()), path / ckpt.LORA_TEACHER_FILE, "LoRA teacher")
        if self.ema is not None:
            ckpt.load_into(self.ema.shadow, path / ckpt.EMA_FILE, "student EMA")
        ckpt.load_optimizers({"student": self.opt_s, "lora_teacher": self.opt_l}, path)
        ckpt.load_schedulers({"student": self.sched_s, "lora_teacher": self.sched_l}, path)
        self.step = int(state["step"])

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
            self.ema.update(self._ema_source(), step + 1)  # this is the (step + 1)-th student update

        lora_params = list(trainable_state(self._teacher()).values())
        for k in range(cfg.lora_teacher_steps):
            for micro, (x0, cond) in enumerate(stash):
                gen = self.generator(step, micro, _LORA + k)
                sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(self.teacher)
                with sync:
                    with acc.autocast():
                        loss_lora = self.lora_teacher_loss(x0, cond, gen)
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

    # -- the job ----------------------------------------------------------------------------------
    def train(self, export: bool = True) -> Path:
        """Run (or resume) the job up to ``max_steps`` and export the student; returns the export dir.

        The output directory is locked for the whole job (one ``training distill`` per directory).
        """
        from bench.locking import lock_directory

        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise BenchError(f"--output-dir {self.output_dir} exists and is not a directory; choose another path")
        main = os.environ.get("RANK", "0") in ("", "0")
        # the lock also removes an output directory it created when the start is refused (a mis-launch, say)
        with lock_directory(self.output_dir, "training distill") if main else contextlib.nullcontext():
            return self._train(export)

    def _count_truncated(self) -> int:
        from training.prompts import TOKEN_LIMIT, count_truncated

        n = count_truncated(self.prompts)
        self.truncated = n
        if n and self.accelerator.is_main_process:
            print(f"training: {n} of {len(self.prompts)} prompts exceed {TOKEN_LIMIT} tokens and are truncated "
                  "by the text encoder's tokenizer", file=sys.stderr)
        return n

    def _write_run_info(self) -> None:
        from training.prompts import TOKEN_LIMIT

        info = {"prompts": len(self.prompts), "prompts_truncated": self.truncated, "token_limit": TOKEN_LIMIT,
                "alpha_T": self.alpha_bar_T, "lora_teacher": self.config.lora_teacher}
        (self.output_dir / "run_info.json").write_text(json.dumps(info, indent=1) + "\n")

    def _train(self, export: bool) -> Path:
        from tqdm.auto import tqdm

        cfg = self.config
        checkpoint = resolve_checkpoint(self.resume, self.output_dir)
        if checkpoint is None and self.resume != "latest" and list_checkpoints(self.output_dir):
            raise BenchError(f"{self.output_dir} already holds checkpoints; pass --resume latest to continue that run "
                             "or choose another --output-dir")
        if checkpoint is not None:  # fail before the models are built
            ckpt.check_same_settings(ckpt.read_state(checkpoint).get("config", {}), cfg.to_dict(), checkpoint)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.setup()
        acc = self.accelerator
        self._count_truncated()
        if self.resume == "latest" and checkpoint is None and acc.is_main_process:
            print(f"training: no checkpoint in {self.output_dir}; starting from step 0")
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        if acc.is_main_process:
            (self.output_dir / "config.toml").write_text(to_toml(cfg))
            self._write_run_info()
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
