"""An example method, to copy: paired translation whose generator also matches the target's edges.

To add it, save this file as img2img/methods/edge_pix2pix.py and register its spec with one line
in img2img/methods/__init__.py's METHODS:  "edge-pix2pix": edge_pix2pix.SPEC,
Then `img2img train --model edge-pix2pix --lambda-edge 5 --data DIR` trains it: its settings
become flags, its config is stored in every checkpoint, and translation, FID, export and the app
use it as they use pix2pix. tests/methods/test_example_method.py does exactly that.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from img2img.config import setting
from img2img.methods.adversarial import AdversarialConfig, AdversarialMethod, gan_mode_setting
from img2img.methods.base import set_requires_grad
from img2img.methods.spec import MethodSpec
from img2img.models import build_discriminator, init_weights


@dataclass
class EdgePix2PixConfig(AdversarialConfig):  # gan_mode, lambda_gp, r1_gamma come with it
    gan_mode: str = gan_mode_setting("vanilla")
    lambda_l1: float = setting(100.0, "weight of the L1 term")
    lambda_edge: float = setting(10.0, "weight of the L1 between the output's and the target's image gradients")


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical differences of neighbouring pixels."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class EdgePix2Pix(AdversarialMethod):
    """How it trains: the networks, optimizers and one step's losses."""

    def __init__(self, spec, model, config, train, device, speed) -> None:
        super().__init__(spec, model, config, train, device, speed)  # sets self.gan_loss from gan_mode
        init = dict(std=model.init_gain, kind=model.init_type)
        self.networks["G"] = init_weights(spec.build_generator(model, "AtoB"), **init).to(device)
        # D judges (input, output) pairs, as pix2pix's does.
        self.networks["D"] = init_weights(build_discriminator(model, model.in_channels + model.out_channels),
                                          **init).to(device)
        self.optimizers = {name: self.adam(net.parameters()) for name, net in self.networks.items()}
        self.prepare_networks()

    def training_step(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        with self.autocast():
            fake_b = self.updating("G")(real_a)
        # D: one helper updates it on real and fake pairs (halved loss, gradient penalties).
        judged, logs = self.update_discriminators({"D": (torch.cat([real_a, real_b], 1),
                                                         torch.cat([real_a, fake_b.detach()], 1))})
        # G: fool D, match the target, and match the target's edges.
        set_requires_grad(self.networks["D"], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.networks["D"](torch.cat([real_a, fake_b], 1))
        fake, real = fake_b.float(), real_b
        losses = {"G_GAN": self.adversarial_loss(pred_fake, True, for_discriminator=False),
                  "G_L1": F.l1_loss(fake, real),
                  "G_edge": sum(F.l1_loss(f, r) for f, r in zip(gradients(fake), gradients(real)))}
        total = losses["G_GAN"] + self.cfg.lambda_l1 * losses["G_L1"] + self.cfg.lambda_edge * losses["G_edge"]
        logs.update(self.optimize("G", total))
        # Losses go back detached; the Trainer reads them every --log-every steps.
        return {"D_real": judged["D"][0], "D_fake": judged["D"][1], **{k: v.detach() for k, v in losses.items()},
                **logs}

    def sample(self, batch):
        """Sample grids: input | output | target."""
        return self.grid_columns(batch["A"], self.translate(batch["A"]), batch["B"])


# What it is, for everything but training (translation, checkpoints, the app): its settings, the
# data layout it trains on (img2img.data.builders.LAYOUTS), and the network that translates A to B.
SPEC = MethodSpec(config=EdgePix2PixConfig, dataset_kind="paired", generator_keys={"AtoB": "G"}, training=EdgePix2Pix)
