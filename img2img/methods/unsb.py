"""UNSB, the unpaired neural Schrödinger bridge (Kim, Kwon, Kim and Ye, ICLR 2024): unpaired
translation as a stochastic bridge from A to B in a few time steps. At a random step t, the
generator predicts the target from X_t (the input carried t steps along the bridge by the
generator itself); a time-conditioned PatchGAN judges the prediction, an energy network
estimates the bridge's entropy term (the SB loss), and CUT's PatchNCE keeps the prediction
faithful to the input. Translation runs 1 to `num_timesteps` steps: more buy detail for time.

Faithful to the paper's code (cyclomon/UNSB, models/sb_model.py) draw for draw, its unused ones
included: its noise-level draw in each of D's and G's losses (`std`), which it never uses, is
made too, so that a run's random stream, and so its result, is the reference's
(benchmarks/parity.py --methods unsb)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import POSITIVE, ModelConfig, at_least, setting
from ..errors import Img2ImgError
from ..losses import patch_nce_loss
from ..models import init_weights
from ..models.bridge import (
    NoiseResNetGenerator,
    TimeConditionedPatchDiscriminator,
    bridge_step,
    bridge_times,
)
from ..models.norm import norm_layer
from .adversarial import AdversarialMethod, gan_mode_setting
from .base import set_requires_grad
from .cut import PatchProjection
from .spec import MethodSpec


@dataclass
class UNSBConfig:
    gan_mode: str = gan_mode_setting("lsgan")
    num_timesteps: int = setting(5, "the bridge's time steps: training draws one at random, translation takes 1 to "
                                 "this many (--steps)", accepts=at_least(1))
    tau: float = setting(0.01, "the bridge's entropy (the variance of its noise)", accepts=POSITIVE)
    lambda_gan: float = setting(1.0, "weight of the adversarial term")
    lambda_sb: float = setting(1.0, "weight of the Schrödinger-bridge term (the paper's training commands; its "
                               "option parser's default is 0.1)")
    lambda_nce: float = setting(1.0, "weight of the PatchNCE terms (applied twice, as in the paper's code)")
    nce_idt: bool = setting(True, "also PatchNCE on (B, G(B)), averaged with (A, G(A))")
    nce_layers: str = setting("0,4,8,12,16", "indices of the generator's layers whose features PatchNCE compares")
    num_patches: int = setting(256, "patches sampled per layer and image", accepts=at_least(1))
    nce_temperature: float = setting(0.07, "PatchNCE temperature", accepts=POSITIVE)
    nce_dim: int = setting(256, "width of the projection heads", accepts=at_least(1))
    mapping_layers: int = setting(3, "hidden layers of the noise vector's mapping network", accepts=at_least(0))
    recipe: str = setting("paper", "preset: paper (its training command, --mode sb --lambda_SB 1.0 --lambda_NCE 1.0, "
                          "the default)", choices=("paper",), fixed=True)


class UNSB(AdversarialMethod):
    """G(X_t, z) -> a prediction of B; D(., t) judges it against real B; E(., t, .) scores pairs
    (X_t, prediction) for the SB term; the patch heads F serve PatchNCE."""

    host_draws = "draws its time step, bridge noise and patch positions at each step"

    def __init__(self, spec, model, config, train, device, speed) -> None:
        super().__init__(spec, model, config, train, device, speed)
        init = {"std": model.init_gain, "kind": model.init_type}
        self.netG = init_weights(spec.build_generator(model, "AtoB", method_config=config), **init).to(device)
        self.layers = [int(i) for i in config.nce_layers.split(",")]
        norm = norm_layer(model.norm)
        self.netD = init_weights(TimeConditionedPatchDiscriminator(model.out_channels, model.ndf, norm=norm),
                                 **init).to(device)
        # The energy network judges (X_t, X_1) pairs, two of them side by side.
        self.netE = init_weights(TimeConditionedPatchDiscriminator(model.out_channels * 4, model.ndf, norm=norm),
                                 **init).to(device)
        self.netF = init_weights(PatchProjection(self._feature_widths(), config.nce_dim), **init).to(device)
        self.networks.update({"G": self.netG, "D": self.netD, "E": self.netE, "F": self.netF})
        self.optimizers = {"G": self.adam(list(self.netG.parameters()) + list(self.netF.parameters())),
                           "D": self.adam(self.netD.parameters()), "E": self.adam(self.netE.parameters())}
        self.times = bridge_times(config.num_timesteps).to(device)
        self.prepare_networks()

    def _feature_widths(self) -> list[int]:
        with torch.no_grad():
            probe = torch.zeros(1, self.model_cfg.in_channels, 32, 32, device=self.device)
            noise = torch.zeros(1, self.netG.noise_dim, device=self.device)
            return [f.shape[1] for f in self.netG(probe, noise, self.layers)]

    def noise(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, self.netG.noise_dim).to(self.device)

    def along_the_bridge(self, t: int, x_t: torch.Tensor, prediction: torch.Tensor | None):
        """(X_t, G's prediction from it), one step on from (X_{t-1}, its prediction); at t = 0,
        X_0 is the source itself."""
        if t > 0:
            x_t = bridge_step(x_t, prediction, self.times, t, self.cfg.tau, torch.randn_like(x_t))
        return x_t, self.netG(x_t, self.noise(len(x_t)))

    @torch.no_grad()
    def simulate(self, sources: list[torch.Tensor], time_index: int) -> list[torch.Tensor]:
        """Each source carried to X_t by the generator itself, a step at a time, all sources in
        turn at each step (the reference's order of draws)."""
        self.netG.eval()
        states = [(source, None) for source in sources]
        with self.autocast():
            for t in range(time_index + 1):
                states = [self.along_the_bridge(t, x_t, prediction) for x_t, prediction in states]
        self.netG.train()
        return [x_t for x_t, _ in states]

    def training_step(self, batch):
        cfg = self.cfg
        real_a, real_b, real_a2 = batch["A"], batch["B"], batch["A2"]
        time_index = int(torch.randint(cfg.num_timesteps, size=[1]))
        sources = [real_a, real_a2, *([real_b] if cfg.nce_idt else [])]
        x_t, x_t2, *x_tb = self.simulate(sources, time_index)
        t = torch.full([1], time_index, dtype=torch.long, device=self.device)
        z, z2 = self.noise(2 * len(real_a) if cfg.nce_idt else len(real_a)), self.noise(len(real_a))
        with self.autocast():
            generator = self.updating("G")
            fake = generator(torch.cat([x_t, *x_tb]), z)
            fake_b2 = generator(x_t2, z2)
        fake_b, idt_b = fake[: len(real_a)], fake[len(real_a):]
        losses = self.discriminator_step(real_b, fake_b, t)
        losses.update(self.energy_step(x_t, x_t2, fake_b, fake_b2, t))
        losses.update(self.generator_step(real_a, real_b, x_t, x_t2, fake_b, fake_b2, idt_b, t))
        return losses

    def discriminator_step(self, real_b, fake_b, t) -> dict[str, torch.Tensor]:
        set_requires_grad(self.netD, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        torch.rand(1)  # the reference's unused noise level (see the module's notes)
        net = self.updating("D")
        with self.autocast():
            pred_fake, pred_real = net(fake_b.detach(), t), net(real_b, t)
        loss_fake = self.gan_loss(pred_fake, False).mean()
        loss_real = self.gan_loss(pred_real, True).mean()
        logs = self.optimize("D", 0.5 * (loss_fake + loss_real))
        return {"D_real": loss_real.detach(), "D_fake": loss_fake.detach(), **logs}

    def energy(self, net, x_t, x_t2, fake_b, fake_b2, t) -> tuple[torch.Tensor, torch.Tensor]:
        """E's mean score of matched (X_t, prediction) pairs less the log-sum-exp of its scores
        of mismatched ones: the SB term's entropy estimate."""
        pairs, others = torch.cat([x_t, fake_b], dim=1), torch.cat([x_t2, fake_b2], dim=1)
        with self.autocast():
            matched, mismatched = net(pairs, t, pairs), net(pairs, t, others)
        return matched.float().mean(), torch.logsumexp(mismatched.float().reshape(-1), dim=0)

    def energy_step(self, x_t, x_t2, fake_b, fake_b2, t) -> dict[str, torch.Tensor]:
        set_requires_grad(self.netE, True)
        self.optimizers["E"].zero_grad(set_to_none=True)
        matched, log_partition = self.energy(self.updating("E"), x_t, x_t2, fake_b.detach(), fake_b2.detach(), t)
        loss = -matched + log_partition + log_partition**2
        return {"E": loss.detach(), **self.optimize("E", loss)}

    def generator_step(self, real_a, real_b, x_t, x_t2, fake_b, fake_b2, idt_b, t):
        cfg = self.cfg
        set_requires_grad(self.netD, False)
        set_requires_grad(self.netE, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        torch.rand(1)  # the reference's unused noise level
        with self.autocast():
            pred_fake = self.netD(fake_b, t)
        loss_gan = self.gan_loss(pred_fake, True, for_discriminator=False).mean() * cfg.lambda_gan
        matched, log_partition = self.energy(self.netE, x_t, x_t2, fake_b, fake_b2, t)
        # In the reference's order of operations (on the time step as a tensor), to the last bit.
        loss_sb = -(cfg.num_timesteps - t[0]) / cfg.num_timesteps * cfg.tau * (matched - log_partition)
        loss_sb = loss_sb + cfg.tau * torch.mean((x_t - fake_b.float()) ** 2)
        # Both PatchNCE noise vectors first: the reference draws its patch positions with NumPy,
        # between them; ours come from torch, after them, so the two streams stay the reference's.
        z_nce = [self.noise(len(real_a)) for _ in range(1 + cfg.nce_idt)]
        loss_nce = self.nce_loss(real_a, fake_b, z_nce[0])
        logs = {"NCE": loss_nce.detach()}
        if cfg.nce_idt:
            loss_nce_y = self.nce_loss(real_b, idt_b, z_nce[1])
            logs["NCE_Y"] = loss_nce_y.detach()
            loss_nce = 0.5 * (loss_nce + loss_nce_y)
        total = loss_gan + cfg.lambda_sb * loss_sb + cfg.lambda_nce * loss_nce
        logs.update(self.optimize("G", total))
        return {"G_GAN": loss_gan.detach(), "SB": loss_sb.detach(), **logs}

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """PatchNCE between G's input and output features (one noise vector for both), averaged
        over layers, each weighted by lambda_nce."""
        cfg = self.cfg
        generator, project = self.updating("G"), self.updating("F")
        with self.autocast():
            queries = generator(output, z, self.layers)
            keys = generator(source, z, self.layers)
        patch_ids = [torch.randperm(f.shape[2] * f.shape[3], device=f.device)[: cfg.num_patches] for f in keys]
        with self.autocast():
            k, q = project(keys, patch_ids), project(queries, patch_ids)
        total = sum((patch_nce_loss(qi.float(), ki.float(), cfg.nce_temperature) * cfg.lambda_nce).mean()
                    for qi, ki in zip(q, k))
        return total / len(q)

    sample_columns = ("A", "G(A), 1 step", "G(A), all steps", "B")

    def sample(self, batch):
        """Per image: A | its translation in one step | in all the trained steps | B."""
        one, every = (self.eval_forward(self.netG.sampling(n, 0), batch["A"]) for n in (1, self.cfg.num_timesteps))
        return self.grid_columns(batch["A"], one, every, batch["B"])


@dataclass(frozen=True)
class BridgeSpec(MethodSpec):
    """UNSB's generator is its own network, sized by the model's ResNet depth and the bridge's
    settings (its time steps and noise; the Translator sets how many steps a translation takes)."""

    def translation_steps(self, method_config: UNSBConfig) -> int:
        return method_config.num_timesteps

    def build_generator(self, model: ModelConfig, direction, batch_statistics: str = "image",
                        method_config: UNSBConfig | None = None):
        if direction != "AtoB":
            raise Img2ImgError("UNSB translates A to B only")
        if not model.netG.startswith("resnet_"):
            raise Img2ImgError(f"UNSB's generator is a ResNet: use --netG resnet_9blocks or resnet_6blocks, "
                               f"not {model.netG}")
        # Its networks are the paper's: a setting they have no use for is refused, not ignored.
        unused = [flag for flag, given in (("--no-antialias", not model.antialias),
                                           ("--no-antialias-d", not model.antialias_d),
                                           (f"--netD {model.netD}", model.netD != "patch"),
                                           (f"--n-layers-d {model.n_layers_d}", model.n_layers_d != 3),
                                           ("--spectral-norm", model.spectral_norm)) if given]
        if unused:
            raise Img2ImgError(f"UNSB's networks are the paper's anti-aliased ones: {', '.join(unused)} "
                               f"{'is' if len(unused) == 1 else 'are'} not available for it")
        bridge = method_config or UNSBConfig()
        return NoiseResNetGenerator(model.in_channels, model.out_channels, model.ngf,
                                    n_blocks=int(model.netG.removeprefix("resnet_").removesuffix("blocks")),
                                    norm=norm_layer(model.norm, batch_statistics), dropout=model.dropout,
                                    mapping_layers=bridge.mapping_layers, num_timesteps=bridge.num_timesteps,
                                    tau=bridge.tau)


def unsb_model() -> ModelConfig:
    """The paper's networks: anti-aliased, instance norm, Xavier init, no dropout."""
    return ModelConfig(netG="resnet_9blocks", norm="instance", dropout=False, antialias=True, antialias_d=True,
                       init_type="xavier")


# The paper's training command's weights, given explicitly (its option parser's λ_SB is 0.1).
RECIPES = {"paper": {"method_config": {"lambda_sb": 1.0, "lambda_nce": 1.0, "nce_idt": True}}}
SPEC = BridgeSpec(config=UNSBConfig, dataset_kind="unpaired", generator_keys={"AtoB": "G"}, training=UNSB,
                  default_model=unsb_model, default_schedule=(200, 200), recipes=RECIPES, second_source=True)
