"""pix2pix (Isola et al. 2017): conditional GAN with a U-Net generator and an L1 term."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import IN_UNIT, setting
from ..losses import feature_matching_loss
from ..models import build_discriminator, init_weights
from .adversarial import AdversarialConfig, AdversarialMethod, gan_mode_setting
from .base import set_requires_grad
from .spec import MethodSpec


@dataclass
class Pix2PixConfig(AdversarialConfig):
    gan_mode: str = gan_mode_setting("vanilla")
    lambda_l1: float = setting(100.0, "weight of the L1 term")
    lambda_feat: float = setting(0.0, "weight of pix2pixHD's discriminator feature-matching loss (e.g. 10; 0: off)")
    ema: float = setting(0.0, "decay of a moving average of G's weights, which then samples and translates "
                         "(e.g. 0.999; 0: off)", fixed=True, accepts=IN_UNIT)
    lr_d: float = setting(0.0, "discriminator learning rate (two time-scale update; 0: --lr)")
    recipe: str = setting("paper", "preset of the settings above and the discriminator's: paper (Isola et al. "
                          "2017, the default) or improved (see README)", choices=("paper", "improved"), fixed=True)


class Pix2Pix(AdversarialMethod):
    def __init__(self, spec, model, config, train, device, speed) -> None:
        super().__init__(spec, model, config, train, device, speed)
        if not 0.0 <= config.ema < 1.0:
            raise ValueError(f"--ema {config.ema}: a decay in [0, 1), e.g. 0.999 (0: off)")
        self.netG = init_weights(spec.build_generator(model, "AtoB"), model.init_gain, model.init_type).to(device)
        # D is conditioned on the input: it sees concat(input, output).
        self.netD = init_weights(build_discriminator(model, model.in_channels + model.out_channels), model.init_gain,
                                 model.init_type).to(device)
        self.networks.update({"G": self.netG, "D": self.netD})
        if config.ema:
            self.netG_ema = copy.deepcopy(self.netG).requires_grad_(False)
            self.networks["G_ema"] = self.netG_ema
        self.optimizers = {"G": self.adam(self.netG.parameters()),
                           "D": self.adam(self.netD.parameters(), lr=config.lr_d or None)}
        self.prepare_networks()

    def training_step(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        with self.autocast():
            fake_b = self.updating("G")(real_a)
        losses = self.discriminator_step(real_a, real_b, fake_b)
        losses.update(self.generator_step(real_a, real_b, fake_b))
        return losses

    def discriminator_step(self, real_a, real_b, fake_b) -> dict[str, torch.Tensor]:
        # D is conditioned on the input: it judges (input, output) pairs.
        judged = {"D": (torch.cat([real_a, real_b], 1), torch.cat([real_a, fake_b.detach()], 1))}
        losses, logs = self.update_discriminators(judged)
        loss_real, loss_fake = losses["D"]
        return {"D_real": loss_real, "D_fake": loss_fake, **logs}

    def generator_step(self, real_a, real_b, fake_b) -> dict[str, torch.Tensor]:
        # D's gradients are not needed while G updates.
        set_requires_grad(self.netD, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        feature_matching = self.cfg.lambda_feat > 0
        with self.autocast():
            fake_pair = torch.cat([real_a, fake_b], 1)
            # Only the patch discriminators return activations; the pixel one is called plainly.
            pred_fake = self.netD(fake_pair, features=True) if feature_matching else self.netD(fake_pair)
            if feature_matching:
                with torch.no_grad():
                    pred_real = self.netD(torch.cat([real_a, real_b], 1), features=True)
        losses = {}
        if feature_matching:
            pred_fake, fake_features = _split_features(pred_fake)
            losses["G_feat"] = feature_matching_loss(fake_features, _split_features(pred_real)[1])
        losses["G_GAN"] = self.adversarial_loss(pred_fake, True, for_discriminator=False)
        losses["G_L1"] = F.l1_loss(fake_b.float(), real_b)
        total = losses["G_GAN"] + self.cfg.lambda_l1 * losses["G_L1"]
        if feature_matching:
            total = total + self.cfg.lambda_feat * losses["G_feat"]
        logs = self.optimize("G", total)
        if self.cfg.ema:
            self.update_ema()
        return {**{k: v.detach() for k, v in losses.items()}, **logs}

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * G for the weights; BatchNorm statistics copied."""
        # One multi-tensor kernel each, rather than a launch per parameter.
        torch._foreach_lerp_(list(self.netG_ema.parameters()), list(self.netG.parameters()), 1.0 - self.cfg.ema)
        buffers = list(self.netG_ema.buffers())
        if buffers:  # instance norm has none, and the foreach kernels refuse an empty list
            torch._foreach_copy_(buffers, list(self.netG.buffers()))

    sample_columns = ("input", "output", "target")

    def sample(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.translate(real_a)
        return self.grid_columns(real_a, fake_b, real_b)


def _split_features(predictions):
    """(logits, [[activations per layer] per scale]) from a discriminator called with features=True."""
    if isinstance(predictions, tuple):
        return predictions[0], [predictions[1]]
    return [p for p, _ in predictions], [f for _, f in predictions]


# "improved": the combination that scored best at the full protocol of the maps ablation
# (benchmarks/RESULTS.md).
RECIPES = {
    "paper": {},
    "improved": {
        "model": {"netD": "multiscale", "num_d": 2, "spectral_norm": True},
        "method_config": {"ema": 0.999, "lambda_feat": 10.0},
    },
}
SPEC = MethodSpec(config=Pix2PixConfig, dataset_kind="paired", generator_keys={"AtoB": "G"}, training=Pix2Pix,
                  ema_keys={"G": "G_ema"}, recipes=RECIPES)
