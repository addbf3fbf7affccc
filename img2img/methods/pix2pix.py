"""pix2pix (Isola et al. 2017): conditional GAN with a U-Net generator and an L1 term."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..losses import GANLoss
from ..models import build_discriminator, build_generator, init_weights
from .base import TrainingMethod, adam, set_requires_grad


class Pix2Pix(TrainingMethod):
    generator_keys = {"AtoB": "G"}

    def __init__(self, cfg: ModelConfig, train: TrainConfig, device: torch.device, amp: bool = False) -> None:
        super().__init__(cfg, device, amp)
        self.netG = init_weights(build_generator(cfg)).to(device)
        # D is conditioned on the input: it sees concat(input, output).
        self.netD = init_weights(build_discriminator(cfg, cfg.in_channels + cfg.out_channels)).to(device)
        self.networks.update({"G": self.netG, "D": self.netD})
        self.optimizers = {"G": adam(self.netG.parameters(), train), "D": adam(self.netD.parameters(), train)}
        self.gan_loss = GANLoss(cfg.gan_mode)

    def training_step(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        with self.autocast():
            fake_b = self.netG(real_a)

        set_requires_grad(self.netD, True)
        opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.netD(torch.cat([real_a, fake_b.detach()], 1))
            pred_real = self.netD(torch.cat([real_a, real_b], 1))
        loss_d_fake = self.gan_loss(pred_fake, False)
        loss_d_real = self.gan_loss(pred_real, True)
        # Halved, as in the paper, to slow D relative to G.
        (0.5 * (loss_d_fake + loss_d_real)).backward()
        opt_d.step()

        set_requires_grad(self.netD, False)
        opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.netD(torch.cat([real_a, fake_b], 1))
        loss_g_gan = self.gan_loss(pred_fake, True, for_discriminator=False)
        loss_g_l1 = F.l1_loss(fake_b.float(), real_b)
        (loss_g_gan + self.cfg.lambda_l1 * loss_g_l1).backward()
        opt_g.step()

        losses = {"G_GAN": loss_g_gan, "G_L1": loss_g_l1, "D_real": loss_d_real, "D_fake": loss_d_fake}
        return {k: v.detach() for k, v in losses.items()}

    def sample(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self._eval_forward(self.netG, real_a)
        return torch.stack([real_a, fake_b, real_b], dim=1)
