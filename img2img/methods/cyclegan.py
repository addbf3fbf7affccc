"""CycleGAN (Zhu et al. 2017): two generators tied by cycle consistency, for unpaired data."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, setting
from ..losses import GAN_MODES, GANLoss
from ..models import build_discriminator, init_weights
from .base import TrainingMethod, set_requires_grad


@dataclass
class CycleGANConfig:
    gan_mode: str = setting("lsgan", "adversarial loss", choices=GAN_MODES)
    lambda_cycle: float = setting(10.0, "weight of the cycle-consistency terms")
    # A fraction of lambda_cycle, as in the CycleGAN code.
    lambda_identity: float = setting(0.5, "weight of the identity terms, times --lambda-cycle (0 = off)")
    pool_size: int = setting(50, "image pool of past fakes shown to D (0 = off)")


class ImagePool:
    """History of generated images, so D also sees older fakes (Shrivastava et al. 2017).

    Until the pool holds `size` images each new image is stored and returned as is; after that
    each image has a 50% chance of being swapped with a random stored one. Size 0 disables it.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def undo_if(self, bad: torch.Tensor, before: list[torch.Tensor]) -> None:
        """Where `bad` (a device bool) is set, slots this step replaced get their old image back
        and slots it filled get a blank one, without reading `bad` on the host. The pool's random
        draws are not undone."""
        for i, image in enumerate(self.images):
            if i >= len(before):
                self.images[i] = torch.where(bad, torch.zeros_like(image), image)
            elif image is not before[i]:
                self.images[i] = torch.where(bad, before[i], image)

    def state_dict(self) -> dict[str, Any]:
        images = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [im.unsqueeze(0).to(device) for im in state["images"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


class CycleGAN(TrainingMethod):
    """G_A: A->B judged by D_A (against real B); G_B: B->A judged by D_B (against real A)."""

    Config = CycleGANConfig
    dataset_kind = "unpaired"
    generator_keys = {"AtoB": "G_A", "BtoA": "G_B"}

    @classmethod
    def default_model(cls) -> ModelConfig:
        return ModelConfig(netG="resnet_9blocks", norm="instance", dropout=False)

    def __init__(self, model, config, train, device, speed) -> None:
        super().__init__(model, config, train, device, speed)
        self.netG_A = init_weights(self.build_generator(model, "AtoB")).to(device)
        self.netG_B = init_weights(self.build_generator(model, "BtoA")).to(device)
        self.netD_A = init_weights(build_discriminator(model, model.out_channels)).to(device)
        self.netD_B = init_weights(build_discriminator(model, model.in_channels)).to(device)
        self.networks.update({"G_A": self.netG_A, "G_B": self.netG_B, "D_A": self.netD_A, "D_B": self.netD_B})
        self.optimizers = {
            "G": self.adam(list(self.netG_A.parameters()) + list(self.netG_B.parameters())),
            "D": self.adam(list(self.netD_A.parameters()) + list(self.netD_B.parameters())),
        }
        self.prepare_networks()
        self.pool_fake_a = ImagePool(config.pool_size, seed=train.seed * 2)
        self.pool_fake_b = ImagePool(config.pool_size, seed=train.seed * 2 + 1)
        self.gan_loss = GANLoss(config.gan_mode)

    def training_step(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        fake_a, fake_b, losses = self.generator_step(real_a, real_b)
        losses.update(self.discriminator_step(real_a, real_b, fake_a, fake_b))
        return losses

    def generator_step(self, real_a, real_b):
        """Update both generators; returns (fake_A, fake_B, losses)."""
        cfg = self.cfg
        lambda_idt = cfg.lambda_identity * cfg.lambda_cycle
        # D's gradients are not needed while the generators update.
        set_requires_grad(self.netD_A, False)
        set_requires_grad(self.netD_B, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        g_a, g_b = self.updating("G_A"), self.updating("G_B")
        with self.autocast():
            fake_b = g_a(real_a)
            rec_a = g_b(fake_b)
            fake_a = g_b(real_b)
            rec_b = g_a(fake_a)
            pred_fake_b = self.netD_A(fake_b)
            pred_fake_a = self.netD_B(fake_a)
        losses = {
            "G_A": self.gan_loss(pred_fake_b, True, for_discriminator=False),
            "G_B": self.gan_loss(pred_fake_a, True, for_discriminator=False),
            "cycle_A": F.l1_loss(rec_a.float(), real_a) * cfg.lambda_cycle,
            "cycle_B": F.l1_loss(rec_b.float(), real_b) * cfg.lambda_cycle,
        }
        if lambda_idt > 0:
            with self.autocast():
                idt_a = g_a(real_b)
                idt_b = g_b(real_a)
            losses["idt_A"] = F.l1_loss(idt_a.float(), real_b) * lambda_idt
            losses["idt_B"] = F.l1_loss(idt_b.float(), real_a) * lambda_idt
        else:
            losses["idt_A"] = losses["idt_B"] = torch.zeros((), device=real_a.device)
        logs = self.optimize("G", sum(losses.values()))
        return fake_a.detach(), fake_b.detach(), {**{k: v.detach() for k, v in losses.items()}, **logs}

    def discriminator_step(self, real_a, real_b, fake_a, fake_b) -> dict[str, torch.Tensor]:
        set_requires_grad(self.netD_A, True)
        set_requires_grad(self.netD_B, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d_a = self._discriminator_loss(self.updating("D_A"), real_b, self.pool_fake_b.query(fake_b))
        loss_d_b = self._discriminator_loss(self.updating("D_B"), real_a, self.pool_fake_a.query(fake_a))
        logs = self.optimize("D", loss_d_a + loss_d_b)
        return {"D_A": loss_d_a.detach(), "D_B": loss_d_b.detach(), **logs}

    def _discriminator_loss(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            pred_real, pred_fake = net(real), net(fake.detach())
        # Halved, as in the paper, to slow D relative to G.
        return 0.5 * (self.gan_loss(pred_real, True) + self.gan_loss(pred_fake, False))

    def sample(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self._eval_forward(self.netG_A, real_a)
        fake_a = self._eval_forward(self.netG_B, real_b)
        row_a = [real_a, fake_b, self._eval_forward(self.netG_B, fake_b), self._eval_forward(self.netG_B, real_a)]
        row_b = [real_b, fake_a, self._eval_forward(self.netG_A, fake_a), self._eval_forward(self.netG_A, real_b)]
        rows = torch.stack([torch.stack(row_a, 1), torch.stack(row_b, 1)], dim=1)  # [N, 2, 4, C, H, W]
        return rows.flatten(0, 1)

    def extra_state(self):
        return {"pool_fake_a": self.pool_fake_a.state_dict(), "pool_fake_b": self.pool_fake_b.state_dict()}

    def snapshot(self):
        pools = [pool.images.copy() for pool in (self.pool_fake_a, self.pool_fake_b)]
        return super().snapshot(), pools

    def undo_if(self, bad, snapshot):
        buffers, pools = snapshot
        super().undo_if(bad, buffers)
        for pool, before in zip((self.pool_fake_a, self.pool_fake_b), pools):
            pool.undo_if(bad, before)

    def load_extra_state(self, state):
        self.pool_fake_a.load_state_dict(state["pool_fake_a"], self.device)
        self.pool_fake_b.load_state_dict(state["pool_fake_b"], self.device)
