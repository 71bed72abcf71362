"""Metrics of a run: ``metrics.csv`` (truncated to the resumed step), TensorBoard, and sample grids."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any


class RunLog:
    """Logging and sample grids (a mixin of :class:`training.trainer.Trainer`)."""

    config: Any
    accelerator: Any
    models: Any
    output_dir: Path
    log_with: str
    step: int
    sample_prompts: list[str]
    latent_shape: tuple[int, ...]
    dtype: Any
    _csv_keys: list[str] | None

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
