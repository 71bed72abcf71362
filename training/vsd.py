"""Loss math of Variational Score Distillation (VSD), free of any model or training-loop code.

Notation: a one-step student maps noise ``z`` and a prompt ``y`` to a clean latent ``x0 = f(z, y)``. For a
timestep ``t`` with cumulative alpha ``a_t``, ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps``. The frozen teacher
predicts ``eps_teacher(x_t, t, y)`` (with classifier-free guidance) and the LoRA teacher, trained on the
student's own samples, predicts ``eps_lora(x_t, t, y)``. VSD updates the student with

    grad_theta = E_{t, eps}[ w(t) * (eps_teacher - eps_lora) * d x0 / d theta ]

which :func:`vsd_surrogate_loss` produces through autograd. Replacing ``eps_lora`` by the sampled ``eps``
gives Score Distillation Sampling (SDS), which mode-collapses; VSD does not.

Defaults chosen here (documented in docs/training.md):

* timesteps: integers drawn uniformly from ``[20, 980]`` (2% to 98% of the 1000-step schedule), the range that
  DreamFusion-style distillation uses; the very noisy end carries little signal for the teacher difference
  and the very clean end gives vanishing updates;
* weighting ``w(t) = 1 - a_t`` (``sigma_t^2``), the choice of DreamFusion and ProlificDreamer; ``"uniform"``
  (``w = 1``) is the alternative;
* reduction ``"mean"`` over latent elements and batch (the per-element gradient is divided by the number of
  elements, which keeps the auxiliary CLIP loss at weight 0.1 in proportion); ``"sum"`` sums over the
  elements of each sample and averages over the batch, so the gradient per sample is exactly the formula.
"""

from __future__ import annotations

from typing import Any

DEFAULT_T_MIN = 20
DEFAULT_T_MAX = 980
WEIGHTINGS = ("sigma2", "uniform")
REDUCTIONS = ("mean", "sum")


def alphas_cumprod_from_config(config: dict[str, Any]) -> Any:
    """Cumulative alphas (float64 tensor of length ``num_train_timesteps``) of a DDPM-style schedule config.

    Supports the ``linear`` and ``scaled_linear`` beta schedules (Stable Diffusion uses the latter).
    """
    import torch

    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    kind = config.get("beta_schedule", "linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        raise ValueError(f"unsupported beta schedule {kind!r}")
    return torch.cumprod(1.0 - betas, dim=0)


def sample_timesteps(
    batch_size: int,
    t_min: int = DEFAULT_T_MIN,
    t_max: int = DEFAULT_T_MAX,
    generator: Any = None,
    device: Any = None,
) -> Any:
    """Integer timesteps drawn uniformly from ``[t_min, t_max]`` (inclusive), shape ``(batch_size,)``."""
    import torch

    if not 0 <= t_min <= t_max:
        raise ValueError(f"need 0 <= t_min <= t_max, got {t_min}, {t_max}")
    gen_device = generator.device if generator is not None else None
    t = torch.randint(t_min, t_max + 1, (batch_size,), generator=generator, device=gen_device)
    return t.to(device) if device is not None else t


def gather(alphas_cumprod: Any, t: Any, like: Any) -> Any:
    """``alphas_cumprod[t]`` shaped ``(B, 1, ..., 1)`` to broadcast against ``like``, in ``like``'s float dtype."""
    a = alphas_cumprod.to(device=t.device)[t].to(like.dtype if like.is_floating_point() else None)
    return a.reshape(-1, *([1] * (like.dim() - 1)))


def weighting(alpha_bar_t: Any, kind: str = "sigma2") -> Any:
    """``w(t)``: ``1 - a_t`` for ``"sigma2"``, 1 for ``"uniform"`` (same shape as ``alpha_bar_t``)."""
    if kind == "sigma2":
        return 1.0 - alpha_bar_t
    if kind == "uniform":
        return alpha_bar_t * 0.0 + 1.0
    raise ValueError(f"unknown weighting {kind!r}; use one of {', '.join(WEIGHTINGS)}")


def add_noise(x0: Any, noise: Any, alpha_bar_t: Any) -> Any:
    """Forward diffusion: ``sqrt(a_t) x0 + sqrt(1 - a_t) noise`` (``alpha_bar_t`` broadcastable to ``x0``)."""
    return alpha_bar_t**0.5 * x0 + (1.0 - alpha_bar_t) ** 0.5 * noise


def eps_from_prediction(x_t: Any, prediction: Any, alpha_bar_t: Any, prediction_type: str = "epsilon") -> Any:
    """Convert a network output (epsilon, v or x0 prediction) to an epsilon prediction."""
    if prediction_type == "epsilon":
        return prediction
    sqrt_a, sqrt_1ma = alpha_bar_t**0.5, (1.0 - alpha_bar_t) ** 0.5
    if prediction_type == "v_prediction":
        return sqrt_a * prediction + sqrt_1ma * x_t
    if prediction_type == "sample":
        return (x_t - sqrt_a * prediction) / sqrt_1ma
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def diffusion_target(x0: Any, noise: Any, alpha_bar_t: Any, prediction_type: str = "epsilon") -> Any:
    """Regression target of the standard diffusion loss for the given prediction type."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return alpha_bar_t**0.5 * noise - (1.0 - alpha_bar_t) ** 0.5 * x0
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def guided(eps_uncond: Any, eps_cond: Any, scale: float) -> Any:
    """Classifier-free guidance: ``eps_uncond + scale * (eps_cond - eps_uncond)``."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def vsd_gradient(eps_teacher: Any, eps_lora: Any, w: Any) -> Any:
    """The per-element VSD gradient with respect to ``x0``: ``w(t) * (eps_teacher - eps_lora)`` (float32)."""
    return w.float() * (eps_teacher.float() - eps_lora.float())


def surrogate_loss(x0: Any, grad: Any, reduction: str = "mean") -> Any:
    """A scalar whose gradient with respect to ``x0`` is ``grad`` (scaled by the reduction).

    The value ``0.5 * ||grad||^2`` (per element for ``"mean"``, per sample for ``"sum"``) measures how far the
    teacher and the LoRA teacher disagree; only its gradient drives training.
    """
    x0f = x0.float()
    target = (x0f - grad.float()).detach()
    sq = 0.5 * (x0f - target) ** 2
    if reduction == "mean":
        return sq.mean()
    if reduction == "sum":
        return sq.flatten(1).sum(dim=1).mean() if sq.dim() > 1 else sq.sum()
    raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")


def vsd_surrogate_loss(x0: Any, eps_teacher: Any, eps_lora: Any, w: Any, reduction: str = "mean") -> Any:
    """VSD loss for the student: d loss / d x0 = ``w(t) * (eps_teacher - eps_lora)`` / normaliser.

    ``w`` broadcasts against ``x0`` (shape ``(B, 1, ..., 1)``); the teacher terms must carry no gradient.
    The normaliser is the number of elements of ``x0`` for ``"mean"`` and the batch size for ``"sum"``.
    """
    return surrogate_loss(x0, vsd_gradient(eps_teacher, eps_lora, w), reduction)


def sds_surrogate_loss(x0: Any, eps_teacher: Any, noise: Any, w: Any, reduction: str = "mean") -> Any:
    """SDS loss: VSD with the sampled ``noise`` in place of the LoRA teacher (mode-seeking; for comparison)."""
    return surrogate_loss(x0, vsd_gradient(eps_teacher, noise, w), reduction)


def diffusion_loss(prediction: Any, target: Any) -> Any:
    """Mean squared error between a network prediction and its diffusion target (computed in float32)."""
    return ((prediction.float() - target.float()) ** 2).mean()
