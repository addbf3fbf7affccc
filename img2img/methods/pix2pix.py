"""pix2pix (Isola et al. 2017): conditional GAN with a U-Net generator and an L1 term."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import setting
from ..losses import GAN_MODES, GANLoss
from ..models import build_discriminator, init_weights
from .base import TrainingMethod, set_requires_grad


@dataclass
class Pix2PixConfig:
    gan_mode: str = setting("vanilla", "adversarial loss", choices=GAN_MODES)
    lambda_l1: float = setting(100.0, "weight of the L1 term")


class Pix2Pix(TrainingMethod):
    Config = Pix2PixConfig
    dataset_kind = "paired"
    generator_keys = {"AtoB": "G"}

    def __init__(self, model, config, train, device, speed) -> None:
        super().__init__(model, config, train, device, speed)
        self.netG = init_weights(self.build_generator(model, "AtoB")).to(device)
        # D is conditioned on the input: it sees concat(input, output).
        self.netD = init_weights(build_discriminator(model, model.in_channels + model.out_channels)).to(device)
        self.networks.update({"G": self.netG, "D": self.netD})
        self.optimizers = {"G": self.adam(self.netG.parameters()), "D": self.adam(self.netD.parameters())}
        self.prepare_networks()
        self.gan_loss = GANLoss(config.gan_mode)

    def training_step(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        with self.autocast():
            fake_b = self.updating("G")(real_a)
        losses = self.discriminator_step(real_a, real_b, fake_b)
        losses.update(self.generator_step(real_a, real_b, fake_b))
        return losses

    def discriminator_step(self, real_a, real_b, fake_b) -> dict[str, torch.Tensor]:
        set_requires_grad(self.netD, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.updating("D")(torch.cat([real_a, fake_b.detach()], 1))
            pred_real = self.updating("D")(torch.cat([real_a, real_b], 1))
        loss_fake = self.gan_loss(pred_fake, False)
        loss_real = self.gan_loss(pred_real, True)
        # Halved, as in the paper, to slow D relative to G.
        logs = self.optimize("D", 0.5 * (loss_fake + loss_real))
        return {"D_real": loss_real.detach(), "D_fake": loss_fake.detach(), **logs}

    def generator_step(self, real_a, real_b, fake_b) -> dict[str, torch.Tensor]:
        # D's gradients are not needed while G updates.
        set_requires_grad(self.netD, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.netD(torch.cat([real_a, fake_b], 1))
        loss_gan = self.gan_loss(pred_fake, True, for_discriminator=False)
        loss_l1 = F.l1_loss(fake_b.float(), real_b)
        logs = self.optimize("G", loss_gan + self.cfg.lambda_l1 * loss_l1)
        return {"G_GAN": loss_gan.detach(), "G_L1": loss_l1.detach(), **logs}

    def sample(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self._eval_forward(self.netG, real_a)
        return torch.stack([real_a, fake_b, real_b], dim=1)
