"""CycleGAN (Zhu et al. 2017): two generators tied by cycle consistency, for unpaired data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..config import ModelConfig, setting
from ..models import build_discriminator, init_weights
from .adversarial import AdversarialConfig, AdversarialMethod
from .base import set_requires_grad
from .spec import MethodSpec


@dataclass
class CycleGANConfig(AdversarialConfig):
    lambda_cycle: float = setting(10.0, "weight of the cycle-consistency terms")
    # A fraction of lambda_cycle, as in the CycleGAN code.
    lambda_identity: float = setting(0.5, "weight of the identity terms, times --lambda-cycle (0 = off)")
    pool_size: int = setting(50, "image pool of past fakes shown to D (0 = off)")


class ImagePool:
    """History of generated images, so D also sees older fakes (Shrivastava et al. 2017).

    Until the pool holds `size` images each new image is stored and returned as is; after that
    each image has a 50% chance of being swapped with a uniformly drawn stored one. Size 0
    disables it. The pool, its count and its draws live on the images' device (the global RNG
    of that device), so a step never reads the host, and a captured CUDA graph draws afresh at
    each replay instead of freezing one host draw.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: torch.Tensor | None = None  # [size, C, H, W] fp32, allocated at the first query
        self.count: torch.Tensor | None = None  # images stored so far: a device int64
        self._journal: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def _allocate(self, like: torch.Tensor) -> None:
        self.images = torch.zeros(self.size, *like.shape[1:], device=like.device)
        self.count = torch.zeros((), dtype=torch.long, device=like.device)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach().float()
        if self.images is None:
            self._allocate(images)
        swap_coin = torch.rand(len(images), device=images.device) < 0.5
        drawn_slot = torch.randint(self.size, (len(images),), device=images.device)
        out = []
        # One image at a time, as the canonical pool: a later image may get an earlier one back.
        for i in range(len(images)):
            image = images[i:i + 1]
            filling = self.count < self.size
            swap = swap_coin[i] & ~filling
            slot = torch.where(filling, self.count, drawn_slot[i]).view(1)
            stored = self.images.index_select(0, slot)
            if self._journal is not None:
                self._journal.append((slot, stored))
            out.append(torch.where(swap, stored, image))
            self.images.index_copy_(0, slot, torch.where(filling | swap, image, stored))
            self.count += filling
        return torch.cat(out)

    def stored(self) -> torch.Tensor:
        """The images stored so far, [count, C, H, W] (reads the count on the host)."""
        if self.images is None:
            return torch.empty(0)
        return self.images[: int(self.count)]

    def snapshot(self) -> tuple[torch.Tensor | None, list]:
        """Start a journal of the slots the next queries write, for `undo_if`."""
        self._journal = []
        return (None if self.count is None else self.count.clone()), self._journal

    def undo_if(self, bad: torch.Tensor, snapshot: tuple[torch.Tensor | None, list]) -> None:
        """Where `bad` (a device bool) is set, put back what the slots held before the snapshot
        (blank for slots filled since) and the count, without reading `bad` on the host. The
        pool's random draws are not undone."""
        count, journal = snapshot
        if self.images is None:
            return
        for slot, before in reversed(journal):
            self.images.index_copy_(0, slot, torch.where(bad, before, self.images.index_select(0, slot)))
        self.count.copy_(torch.where(bad, 0 if count is None else count, self.count))

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.stored().cpu()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """The stored images (a checkpoint from before device-side pools also holds a host RNG
        state, no longer used: draws now come from the device RNG, itself checkpointed)."""
        images = state["images"][: self.size]
        if not len(images):
            self.images = self.count = None
            return
        self._allocate(images.to(device))
        self.images[: len(images)] = images.to(device)
        self.count.fill_(len(images))


class CycleGAN(AdversarialMethod):
    """G_A: A->B judged by D_A (against real B); G_B: B->A judged by D_B (against real A)."""

    def __init__(self, spec, model, config, train, device, speed) -> None:
        super().__init__(spec, model, config, train, device, speed)
        init = dict(std=model.init_gain, kind=model.init_type)
        self.netG_A = init_weights(spec.build_generator(model, "AtoB"), **init).to(device)
        self.netG_B = init_weights(spec.build_generator(model, "BtoA"), **init).to(device)
        self.netD_A = init_weights(build_discriminator(model, model.out_channels), **init).to(device)
        self.netD_B = init_weights(build_discriminator(model, model.in_channels), **init).to(device)
        self.networks.update({"G_A": self.netG_A, "G_B": self.netG_B, "D_A": self.netD_A, "D_B": self.netD_B})
        self.optimizers = {
            "G": self.adam(list(self.netG_A.parameters()) + list(self.netG_B.parameters())),
            "D": self.adam(list(self.netD_A.parameters()) + list(self.netD_B.parameters())),
        }
        self.prepare_networks()
        self.pool_fake_a = ImagePool(config.pool_size)
        self.pool_fake_b = ImagePool(config.pool_size)

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
        """D_A judges real B against pooled fakes B; D_B real A against pooled fakes A."""
        pooled_b, pooled_a = self.pool_fake_b.query(fake_b), self.pool_fake_a.query(fake_a)
        losses, logs = self.update_discriminators({"D_A": (real_b, pooled_b), "D_B": (real_a, pooled_a)},
                                                  real_first=True)
        return {name: 0.5 * (loss_real + loss_fake) for name, (loss_real, loss_fake) in losses.items()} | logs

    # Two rows per image: A first, then B.
    sample_columns = ("real", "translated", "translated back", "identity")

    def sample(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.eval_forward(self.netG_A, real_a)
        fake_a = self.eval_forward(self.netG_B, real_b)
        row_a = [real_a, fake_b, self.eval_forward(self.netG_B, fake_b), self.eval_forward(self.netG_B, real_a)]
        row_b = [real_b, fake_a, self.eval_forward(self.netG_A, fake_a), self.eval_forward(self.netG_A, real_b)]
        rows = torch.stack([self.grid_columns(*row_a), self.grid_columns(*row_b)], dim=1)  # [N, 2, 4, 3, H, W]
        return rows.flatten(0, 1)

    def extra_state(self):
        return {"pool_fake_a": self.pool_fake_a.state_dict(), "pool_fake_b": self.pool_fake_b.state_dict()}

    def snapshot(self):
        return super().snapshot(), [pool.snapshot() for pool in (self.pool_fake_a, self.pool_fake_b)]

    def undo_if(self, bad, snapshot):
        buffers, pools = snapshot
        super().undo_if(bad, buffers)
        for pool, before in zip((self.pool_fake_a, self.pool_fake_b), pools):
            pool.undo_if(bad, before)

    def load_extra_state(self, state):
        self.pool_fake_a.load_state_dict(state["pool_fake_a"], self.device)
        self.pool_fake_b.load_state_dict(state["pool_fake_b"], self.device)


SPEC = MethodSpec(config=CycleGANConfig, dataset_kind="unpaired", generator_keys={"AtoB": "G_A", "BtoA": "G_B"},
                  training=CycleGAN,
                  default_model=lambda: ModelConfig(netG="resnet_9blocks", norm="instance", dropout=False))
