"""The loss math of training.vsd, and a 2-D toy reproducing SwiftBrush's claim: VSD covers modes, SDS collapses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from methods.components import SD_SCHEDULER_CONFIG
from training import vsd


def test_alphas_match_diffusers_scheduler():
    from diffusers import DDPMScheduler

    ours = vsd.alphas_cumprod_from_config(SD_SCHEDULER_CONFIG)
    theirs = DDPMScheduler(**SD_SCHEDULER_CONFIG).alphas_cumprod
    assert torch.allclose(ours.float(), theirs.float(), rtol=1e-6, atol=1e-7)


def test_timesteps_weighting_and_noising():
    gen = torch.Generator().manual_seed(0)
    t = vsd.sample_timesteps(10_000, 20, 980, generator=gen)
    assert t.dtype == torch.long and int(t.min()) == 20 and int(t.max()) == 980
    alphas = vsd.alphas_cumprod_from_config(SD_SCHEDULER_CONFIG).float()
    x0 = torch.randn(3, 4, 2, 2)
    a = vsd.gather(alphas, torch.tensor([20, 500, 980]), x0)
    assert a.shape == (3, 1, 1, 1)
    assert torch.allclose(vsd.weighting(a, "sigma2"), 1 - a)
    assert torch.equal(vsd.weighting(a, "uniform"), torch.ones_like(a))
    noise = torch.randn_like(x0)
    x_t = vsd.add_noise(x0, noise, a)
    for kind in ("epsilon", "v_prediction", "sample"):
        target = vsd.diffusion_target(x0, noise, a, kind)
        assert torch.allclose(vsd.eps_from_prediction(x_t, target, a, kind), noise, atol=1e-4)
    assert torch.allclose(vsd.guided(torch.zeros(2), torch.ones(2), 4.5), torch.full((2,), 4.5))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_surrogate_gradient_equals_vsd_formula_linear(reduction):
    """Student x0 = W z (theta = W): d loss / d W must equal sum_b w_b (eps_t - eps_l)_b z_b^T / normaliser."""
    torch.manual_seed(0)
    b, d_in, d_out = 3, 5, 8
    weight = torch.randn(d_out, d_in, requires_grad=True)
    z = torch.randn(b, d_in)
    x0 = z @ weight.T
    eps_t, eps_l = torch.randn(b, d_out), torch.randn(b, d_out)
    w = torch.rand(b, 1)
    vsd.vsd_surrogate_loss(x0, eps_t, eps_l, w, reduction).backward()
    per_sample = w * (eps_t - eps_l)  # (B, d_out): the VSD gradient w.r.t. x0
    normaliser = b * d_out if reduction == "mean" else b
    by_hand = per_sample.T @ z / normaliser  # chain rule: dx0_b/dW = z_b (outer product)
    assert torch.allclose(weight.grad, by_hand, atol=1e-6)


def test_surrogate_gradient_equals_vsd_formula_network():
    """Same check through a small conv net with the Jacobian d x0 / d theta computed explicitly."""
    from torch.func import functional_call, jacrev

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 4, 3, padding=1))
    params = {k: v.detach() for k, v in net.named_parameters()}
    z = torch.randn(2, 4, 4, 4)
    alphas = vsd.alphas_cumprod_from_config(SD_SCHEDULER_CONFIG).float()
    t = torch.tensor([100, 900])

    x0 = functional_call(net, params, (z,))
    a = vsd.gather(alphas, t, x0)
    eps_t, eps_l = torch.randn_like(x0), torch.randn_like(x0)
    w = vsd.weighting(a)

    net.zero_grad()
    vsd.vsd_surrogate_loss(net(z), eps_t, eps_l, w, "sum").backward()
    jac = jacrev(lambda p: functional_call(net, p, (z,)))(params)  # d x0 / d theta, per parameter
    g = w * (eps_t - eps_l)
    for name, p in net.named_parameters():
        by_hand = torch.tensordot(g, jac[name], dims=g.dim()) / z.shape[0]
        assert torch.allclose(p.grad, by_hand, atol=1e-5), name


def test_surrogate_value_and_sds():
    x0 = torch.zeros(2, 3, requires_grad=True)
    eps_t, eps_l, w = torch.ones(2, 3), torch.zeros(2, 3), torch.full((2, 1), 0.5)
    loss = vsd.vsd_surrogate_loss(x0, eps_t, eps_l, w, "mean").detach()
    assert float(loss) == pytest.approx(0.5 * 0.25)  # 0.5 * ||w (eps_t - eps_l)||^2 per element
    noise = torch.zeros(2, 3)
    assert float(vsd.sds_surrogate_loss(x0, eps_t, noise, w).detach()) == float(loss)
    with pytest.raises(ValueError):
        vsd.vsd_surrogate_loss(x0, eps_t, eps_l, w, "median")


# -- the 2-D mixture-of-Gaussians toy -------------------------------------------------------------------
MODES = 6
RADIUS, STD = 2.0, 0.35
CENTRES = torch.stack(
    [RADIUS * torch.tensor([math.cos(2 * math.pi * k / MODES), math.sin(2 * math.pi * k / MODES)]) for k in range(MODES)]
)


def mog_eps(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Analytic teacher: epsilon of the noised mixture, -sqrt(1 - a) * grad log p_t(x), one prompt."""
    means = a.sqrt()[:, None, :] * CENTRES[None]
    var = a * STD**2 + (1 - a)
    resp = torch.softmax(-((x[:, None, :] - means) ** 2).sum(-1) / (2 * var), dim=1)
    score = (resp[..., None] * (means - x[:, None, :])).sum(1) / var
    return -(1 - a).sqrt() * score


def mlp(n_in: int, zero_last: bool = False) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(n_in, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))
    if zero_last:  # the "LoRA" residual starts at zero: the LoRA teacher starts as the teacher
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
    return net


def train_toy(method: str, steps: int, weighting: str = "sigma2", seed: int = 0, batch: int = 256) -> nn.Module:
    """A one-step generator x0 = g(z) trained by VSD (LoRA teacher = teacher + learned residual) or SDS."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    generator, residual = mlp(2), mlp(3, zero_last=True)
    opt_g = torch.optim.Adam(generator.parameters(), lr=3e-3)
    opt_l = torch.optim.Adam(residual.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, steps)
    alphas = vsd.alphas_cumprod_from_config(SD_SCHEDULER_CONFIG).float()

    def lora_eps(x, t, a):
        return mog_eps(x, a) + residual(torch.cat([x, t[:, None].float() / 1000], dim=1))

    def noised(x0):
        t = vsd.sample_timesteps(batch, generator=gen)
        a = vsd.gather(alphas, t, x0)
        noise = torch.randn(batch, 2, generator=gen)
        return t, a, noise, vsd.add_noise(x0.detach(), noise, a)

    for _ in range(steps):
        x0 = generator(torch.randn(batch, 2, generator=gen))
        t, a, noise, x_t = noised(x0)
        with torch.no_grad():
            eps_teacher = mog_eps(x_t, a)
            eps_other = lora_eps(x_t, t, a) if method == "vsd" else noise  # SDS: the sampled noise
        loss = vsd.vsd_surrogate_loss(x0, eps_teacher, eps_other, vsd.weighting(a, weighting))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        schedule.step()
        if method == "vsd":  # the LoRA teacher follows the generator (a few updates per generator step)
            for _ in range(4):
                t, a, noise, x_t = noised(x0)
                opt_l.zero_grad()
                vsd.diffusion_loss(lora_eps(x_t, t, a), noise).backward()
                opt_l.step()
    return generator


def evaluate_toy(generator: nn.Module, n: int = 1500) -> dict[str, float]:
    from bench.metrics.knn_exact import precision_recall

    with torch.no_grad():
        fake = generator(torch.randn(n, 2, generator=torch.Generator().manual_seed(123)))
    rng = torch.Generator().manual_seed(7)
    real = CENTRES[torch.randint(0, MODES, (n,), generator=rng)] + STD * torch.randn(n, 2, generator=rng)
    scores = precision_recall(real.numpy(), fake.numpy(), k=3)
    near = torch.cdist(fake, CENTRES).min(dim=1)
    hit = near.values < 3 * STD  # samples that landed on a mode
    shares = torch.bincount(near.indices[hit], minlength=MODES).float() / n
    return {"precision": scores["precision"], "recall": scores["recall"], "min_mode_share": float(shares.min())}


def test_vsd_covers_every_mode_while_sds_collapses(one_thread):
    """SwiftBrush's motivation in seconds: same generator, same teacher; only the LoRA teacher differs."""
    vsd_scores = evaluate_toy(train_toy("vsd", steps=450))
    assert vsd_scores["precision"] > 0.7, vsd_scores
    assert vsd_scores["recall"] > 0.7, vsd_scores
    assert vsd_scores["min_mode_share"] > 0.07, vsd_scores  # each of the 6 modes holds > 7% (ideal: 16.7%)

    for weighting in ("sigma2", "uniform"):
        sds_scores = evaluate_toy(train_toy("sds", steps=300, weighting=weighting))
        assert sds_scores["recall"] < 0.2, (weighting, sds_scores)
        assert sds_scores["min_mode_share"] < 0.02, (weighting, sds_scores)  # at least one mode is lost
