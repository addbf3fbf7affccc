"""CUT and FastCUT (Park et al. 2020): unpaired translation with one generator, kept faithful to
its input by a patchwise contrastive loss (PatchNCE) on the generator's own encoder features."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import POSITIVE, ModelConfig, at_least, setting
from ..errors import Img2ImgError
from ..losses import patch_nce_loss
from ..models import build_discriminator, init_weights
from .adversarial import AdversarialConfig, AdversarialMethod
from .base import set_requires_grad
from .spec import MethodSpec


@dataclass
class CUTConfig(AdversarialConfig):
    lambda_gan: float = setting(1.0, "weight of the adversarial term")
    lambda_nce: float = setting(1.0, "weight of the PatchNCE terms")
    nce_idt: bool = setting(True, "also PatchNCE on (B, G(B)), averaged with (A, G(A))")
    nce_layers: str = setting("", "indices of the ResNet layers whose features PatchNCE compares (default: the "
                              "padded input, the two downsampling convs, residual blocks 1 and 5; 0,4,8,12,16 "
                              "with --antialias, as in the reference)")
    num_patches: int = setting(256, "patches sampled per layer and image", accepts=at_least(1))
    nce_temperature: float = setting(0.07, "PatchNCE temperature", accepts=POSITIVE)
    nce_dim: int = setting(256, "width of the projection heads", accepts=at_least(1))
    flip_equivariance: bool = setting(False, "flip the input at random; queries are flipped back")


@dataclass
class FastCUTConfig(CUTConfig):
    lambda_nce: float = setting(10.0, "weight of the PatchNCE terms")
    nce_idt: bool = setting(False, "also PatchNCE on (B, G(B)), averaged with (A, G(A))")
    flip_equivariance: bool = setting(True, "flip the input at random; queries are flipped back")


class PatchProjection(nn.Module):
    """One 2-layer MLP per feature layer (Linear -> ReLU -> Linear), applied to sampled patches
    and scaled to unit length. Widths are given, not inferred from a first batch, so the heads exist
    (in the optimizer and the checkpoint) from the start."""

    def __init__(self, in_widths: list[int], dim: int = 256) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(w, dim), nn.ReLU(), nn.Linear(dim, dim)) for w in in_widths)

    def forward(self, features: list[torch.Tensor], patch_ids: list[torch.Tensor]) -> list[torch.Tensor]:
        """[B, C, H, W] per layer and the flat positions to sample -> [B, P, dim] per layer."""
        out = []
        for head, feature, ids in zip(self.heads, features, patch_ids):
            projected = head(feature.flatten(2).transpose(1, 2)[:, ids])  # [B, P, dim]
            # Divided by the norm plus 1e-7, as in the reference, not F.normalize's max(norm, 1e-12):
            # the heads start small (gain 0.02), with norms of 1e-5 to 5e-3 that the 1e-7 shortens
            # by up to 0.75%.
            out.append(projected / (projected.pow(2).sum(-1, keepdim=True).pow(0.5) + 1e-7))
        return out


class CUT(AdversarialMethod):
    """G: A->B, with D judging G(A) against real B, and PatchNCE tying each patch of G(A) to the
    same patch of A (and, with nce_idt, of G(B) to B)."""

    host_draws = "draws its flips on the host and its patch positions with randperm at each step"

    def __init__(self, spec, model, config, train, device, speed) -> None:
        super().__init__(spec, model, config, train, device, speed)
        if not model.netG.startswith("resnet"):
            raise Img2ImgError(f"{type(self).__name__} takes its features from a ResNet generator, not "
                               f"--netG {model.netG}: use resnet_9blocks or resnet_6blocks")
        self.netG = init_weights(spec.build_generator(model, "AtoB"), model.init_gain, model.init_type).to(device)
        self.layers = ([int(i) for i in config.nce_layers.split(",")] if config.nce_layers
                       else self.netG.encoder_layers)
        self.netD = init_weights(build_discriminator(model, model.out_channels), model.init_gain, model.init_type).to(device)
        self.netF = init_weights(PatchProjection(self._feature_widths(), config.nce_dim), model.init_gain,
                                 model.init_type).to(device)
        self.networks.update({"G": self.netG, "D": self.netD, "F": self.netF})
        # One Adam over G and the heads: per-parameter, so the same as the reference's two.
        self.optimizers = {"G": self.adam(list(self.netG.parameters()) + list(self.netF.parameters())),
                           "D": self.adam(self.netD.parameters())}
        self.prepare_networks()

    def _feature_widths(self) -> list[int]:
        """Channels of the NCE layers, from one small forward of the untrained generator."""
        was_training = self.netG.training
        self.netG.eval()
        with torch.no_grad():
            probe = torch.zeros(1, self.model_cfg.in_channels, 32, 32, device=self.device)
            widths = [f.shape[1] for f in self.netG(probe, self.layers)]
        self.netG.train(was_training)
        return widths

    def training_step(self, batch):
        real_a, real_b = batch["A"], batch["B"]
        cfg = self.cfg
        real = torch.cat([real_a, real_b]) if cfg.nce_idt else real_a
        # Drawn on the CPU generator: deciding costs no device sync.
        flipped = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        with self.autocast():
            fake = self.updating("G")(real)
        fake_b, idt_b = fake[: len(real_a)], fake[len(real_a):]
        losses = self.discriminator_step(real_b, fake_b)
        losses.update(self.generator_step(real_a, real_b, fake_b, idt_b, flipped))
        return losses

    def discriminator_step(self, real_b, fake_b) -> dict[str, torch.Tensor]:
        losses, logs = self.update_discriminators({"D": (real_b, fake_b)})
        loss_real, loss_fake = losses["D"]
        return {"D_real": loss_real, "D_fake": loss_fake, **logs}

    def generator_step(self, real_a, real_b, fake_b, idt_b, flipped: bool) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        set_requires_grad(self.netD, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.netD(fake_b)
        loss_gan = self.gan_loss(pred_fake, True, for_discriminator=False) * cfg.lambda_gan
        # The inputs the fakes came from were flipped; the keys are the unflipped real images.
        loss_nce = self.nce_loss(real_a, fake_b, flipped)
        logs = {"NCE": loss_nce.detach()}
        if cfg.nce_idt:
            loss_nce_y = self.nce_loss(real_b, idt_b, flipped)
            logs["NCE_Y"] = loss_nce_y.detach()
            loss_nce = 0.5 * (loss_nce + loss_nce_y)
        logs.update(self.optimize("G", loss_gan + loss_nce))
        return {"G_GAN": loss_gan.detach(), **logs}

    def query_features(self, output: torch.Tensor, flipped: bool) -> list[torch.Tensor]:
        """Encoder features of G's output, flipped back when its input was flipped, so that each
        query patch sits where its key (from the unflipped input) does."""
        with self.autocast():
            features = self.updating("G")(output, self.layers)
        return [f.flip(3) for f in features] if flipped else features

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor, flipped: bool = False) -> torch.Tensor:
        """PatchNCE between G's input `source` and its output, averaged over layers, times lambda_nce."""
        cfg = self.cfg
        queries = self.query_features(output, flipped)
        patch_ids = [torch.randperm(f.shape[2] * f.shape[3], device=f.device)[: cfg.num_patches] for f in queries]
        project = self.updating("F")
        # Keys are detached in the loss, so their path needs no graph.
        with torch.no_grad(), self.autocast():
            k = project(self.updating("G")(source, self.layers), patch_ids)
        # The heads run under autocast too: the features they take are bf16 there.
        with self.autocast():
            q = project(queries, patch_ids)
        # Weighted, then averaged, then summed over layers and divided, in the reference's order.
        total = sum((patch_nce_loss(qi.float(), ki.float(), cfg.nce_temperature) * cfg.lambda_nce).mean()
                    for qi, ki in zip(q, k))
        return total / len(q)

    sample_columns = ("A", "G(A)", "B", "G(B), how close to identity")

    def sample(self, batch):
        """Per image: A | G(A) | B | G(B) (the last shows how close to identity G stays on B)."""
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.eval_forward(self.netG, real_a)
        idt_b = self.eval_forward(self.netG, real_b)
        return self.grid_columns(real_a, fake_b, real_b, idt_b)


class FastCUT(CUT):
    """CUT without the identity term, with flip equivariance and a larger NCE weight: about half
    CycleGAN's cost per step, trained 150 + 50 epochs as in the paper."""


def cut_model() -> ModelConfig:
    """The CUT code's networks: anti-aliased ResNet generator and discriminator, Xavier init."""
    return ModelConfig(netG="resnet_9blocks", norm="instance", dropout=False, antialias=True, antialias_d=True,
                       init_type="xavier")


SPEC = MethodSpec(config=CUTConfig, dataset_kind="unpaired", generator_keys={"AtoB": "G"}, training=CUT,
                  default_model=cut_model)
FASTCUT_SPEC = MethodSpec(config=FastCUTConfig, dataset_kind="unpaired", generator_keys={"AtoB": "G"},
                          training=FastCUT, default_model=cut_model, default_schedule=(150, 50))
