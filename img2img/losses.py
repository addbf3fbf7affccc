"""Adversarial losses on discriminator logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")


class GANLoss(nn.Module):
    """`vanilla` is the original GAN (BCE on logits), `lsgan` least squares, `hinge` the hinge loss,
    `wgangp` the Wasserstein critic's mean (its gradient penalty is `gradient_penalty`).

    Call as `loss(logits, real)` where `real` says which label the logits should have. The
    generator's loss is `loss(logits, True, for_discriminator=False)`: it differs from the
    discriminator's only for hinge, whose generator term is unbounded (-mean logits).
    """

    def __init__(self, mode: str = "vanilla") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan mode {mode!r}; choose one of {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, logits: torch.Tensor, real: bool, for_discriminator: bool = True) -> torch.Tensor:
        logits = logits.float()
        if self.mode == "vanilla":
            target = torch.ones_like(logits) if real else torch.zeros_like(logits)
            return F.binary_cross_entropy_with_logits(logits, target)
        if self.mode == "lsgan":
            return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))
        if self.mode == "wgangp":
            return -logits.mean() if real else logits.mean()
        if not for_discriminator:
            return -logits.mean()
        return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()


def _critic_sum(predictions) -> torch.Tensor:
    """The sum of a discriminator's logits, over a multiscale one's scales too."""
    if isinstance(predictions, torch.Tensor):
        return predictions.float().sum()
    return sum(p.float().sum() for p in predictions)


def input_gradient(discriminator: nn.Module, x: torch.Tensor, autocast) -> torch.Tensor:
    """dD(x)/dx, kept in the graph (create_graph), so that a penalty on it trains D: the double
    backward that WGAN-GP and R1 need."""
    x = x.detach().requires_grad_(True)
    with autocast():
        predictions = discriminator(x)
    (gradient,) = torch.autograd.grad(_critic_sum(predictions), x, create_graph=True)
    return gradient.float().flatten(1)


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, autocast) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||dD(x)/dx|| - 1)^2] at random points between real
    and fake inputs."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    between = alpha * real.detach() + (1 - alpha) * fake.detach()
    return (input_gradient(discriminator, between, autocast).norm(2, dim=1) - 1).square().mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor, autocast) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||dD(x)/dx||^2] on real inputs (weighted gamma / 2 by the caller)."""
    return input_gradient(discriminator, real, autocast).square().sum(1).mean()


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD's discriminator feature matching: L1 between D's activations on the fake and on
    the real pair (detached), per scale and layer, each layer weighted 4 / (layers) and each
    scale 1 / (scales), as pix2pixHD weights them."""
    total = torch.zeros((), device=fake[0][0].device)
    for fake_layers, real_layers in zip(fake, real):
        weight = 4.0 / len(fake_layers) / len(fake)
        for f, r in zip(fake_layers, real_layers):
            total = total + weight * F.l1_loss(f.float(), r.detach().float())
    return total


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE (Park et al. 2020), per query: [B, P, C] L2-normalised features of P patches at
    the same positions. For patch p the positive is key p, the negatives are the other keys of
    the same image (the diagonal is masked out); cross-entropy over similarities / temperature.
    Keys are detached. Returns [B, P] losses."""
    key = key.detach()
    batch, patches, channels = query.shape
    # Each patch's dot product as a 1x1 matrix product, as the reference computes it, so that its
    # rounding is the same (an elementwise product and sum rounds differently).
    positive = torch.bmm(query.reshape(-1, 1, channels), key.reshape(-1, channels, 1)).view(batch, patches, 1)
    negative = torch.bmm(query, key.transpose(1, 2))  # [B, P, P]
    diagonal = torch.eye(query.shape[1], dtype=torch.bool, device=query.device)
    negative = negative.masked_fill(diagonal, float("-inf"))
    logits = torch.cat([positive, negative], dim=-1) / temperature
    return -torch.log_softmax(logits.float(), dim=-1)[..., 0]
