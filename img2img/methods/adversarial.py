"""What every GAN method shares: the adversarial loss setting, and the discriminators' update
with its gradient penalties. A method is an AdversarialMethod when it trains discriminators."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import setting
from ..losses import GAN_MODES, GANLoss, gradient_penalty, r1_penalty
from .base import TrainingMethod, set_requires_grad


def gan_mode_setting(default: str):
    """The adversarial loss setting, with the method's default."""
    return setting(default, "adversarial loss (wgangp: with a gradient penalty; not with --cuda-graphs)",
                   choices=GAN_MODES)


@dataclass
class AdversarialConfig:
    """The settings every GAN method shares; a method's Config extends it (and may give
    `gan_mode` its own default with `gan_mode_setting`)."""

    gan_mode: str = gan_mode_setting("lsgan")
    lambda_gp: float = setting(10.0, "--gan-mode wgangp: weight of the gradient penalty")
    r1_gamma: float = setting(0.0, "R1 penalty on real images, gamma/2 E|dD(x)/dx|^2 (e.g. 10; 0: off). It and "
                              "wgangp differentiate D's input gradient, which --cuda-graphs does not capture: "
                              "refused together")


class AdversarialMethod(TrainingMethod):
    """A TrainingMethod whose Config is an AdversarialConfig: `self.gan_loss` from its gan_mode,
    and the discriminators' update."""

    def __init__(self, spec, model, config, train, device, speed) -> None:
        super().__init__(spec, model, config, train, device, speed)
        self.gan_loss = GANLoss(config.gan_mode)

    def adversarial_loss(self, predictions, real: bool, for_discriminator: bool = True) -> torch.Tensor:
        """The GAN loss (`self.gan_loss`), averaged over a multiscale discriminator's scales (so
        that its weight against other terms is a single PatchGAN's)."""
        if isinstance(predictions, torch.Tensor):
            return self.gan_loss(predictions, real, for_discriminator)
        return sum(self.gan_loss(p, real, for_discriminator) for p in predictions) / len(predictions)

    def update_discriminators(self, judged: dict[str, tuple[torch.Tensor, torch.Tensor]], optimizer: str = "D",
                              real_first: bool = False) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict]:
        """One step of optimizer `optimizer` for the discriminators in `judged`, {name: (real,
        fake)}: each one's GAN loss, halved as in the papers to slow D relative to G, plus the
        gradient penalties the settings ask for. `real_first`: D sees the real batch first (the
        CycleGAN code's order; pix2pix's and CUT's see the fake first), which matters to batch
        norm's running statistics. Returns ({name: (loss on real, loss on fake)}, the penalties
        and gradient norms to log), all detached."""
        self.optimizers[optimizer].zero_grad(set_to_none=True)
        per_network, total = {}, 0
        for name, (real, fake) in judged.items():
            set_requires_grad(self.networks[name], True)
            net = self.updating(name)
            with self.autocast():
                if real_first:
                    pred_real, pred_fake = net(real), net(fake.detach())
                else:
                    pred_fake, pred_real = net(fake.detach()), net(real)
            if real_first:
                loss_real, loss_fake = self.adversarial_loss(pred_real, True), self.adversarial_loss(pred_fake, False)
            else:
                loss_fake, loss_real = self.adversarial_loss(pred_fake, False), self.adversarial_loss(pred_real, True)
            per_network[name] = (loss_real, loss_fake)
            total = total + 0.5 * (loss_fake + loss_real)
        penalties = {}
        for name, (real, fake) in judged.items():
            penalties.update(self.discriminator_penalties(name, real, fake))
        logs = self.optimize(optimizer, total + sum(penalties.values()))
        detached = {name: (r.detach(), f.detach()) for name, (r, f) in per_network.items()}
        return detached, {**{k: v.detach() for k, v in penalties.items()}, **logs}

    def discriminator_penalties(self, name: str, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """The gradient penalties the settings ask of discriminator `name`: WGAN-GP's (weight
        --lambda-gp) for --gan-mode wgangp, and R1's (gamma / 2) for --r1-gamma above 0."""
        penalties = {}
        net = self.updating(name)
        if self.cfg.gan_mode == "wgangp":
            penalties[f"{name}_gp"] = self.cfg.lambda_gp * gradient_penalty(net, real, fake, self.autocast)
        if self.cfg.r1_gamma > 0:
            penalties[f"{name}_r1"] = 0.5 * self.cfg.r1_gamma * r1_penalty(net, real, self.autocast)
        return penalties
