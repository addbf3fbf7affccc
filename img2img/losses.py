"""Adversarial losses on discriminator logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan", "hinge")


class GANLoss(nn.Module):
    """`vanilla` is the original GAN (BCE on logits), `lsgan` least squares, `hinge` the hinge loss.

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
        if not for_discriminator:
            return -logits.mean()
        return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()


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
    positive = (query * key).sum(-1, keepdim=True)  # [B, P, 1]
    negative = torch.bmm(query, key.transpose(1, 2))  # [B, P, P]
    diagonal = torch.eye(query.shape[1], dtype=torch.bool, device=query.device)
    negative = negative.masked_fill(diagonal, float("-inf"))
    logits = torch.cat([positive, negative], dim=-1) / temperature
    return -torch.log_softmax(logits.float(), dim=-1)[..., 0]
