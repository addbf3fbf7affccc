"""The networks of the unpaired neural Schrödinger bridge (UNSB, Kim et al. 2024): a ResNet
generator modulated by a noise vector, and a PatchGAN conditioned on the bridge's time step,
which is both UNSB's discriminator and its energy network.

They compute what the paper's code (cyclomon/UNSB, models/ncsn_networks.py) computes, which is
not everything it builds. Its residual block applies each layer of its first stage to the
block's input rather than chaining them, so only the last one, the norm, reaches the output:
the block's first convolution and its time input are computed and thrown away, and so is the
generator's time embedding. The generator therefore depends on its input and its noise alone.
These networks leave out what never reaches an output (tests/methods/test_unsb.py checks the
equality against the reference)."""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .antialias import BlurDownsample, BlurUpsample
from .norm import NORM_LAYERS, NormLayer, conv_bias
from .padding import ReflectionPad2d


def timestep_embedding(steps: torch.Tensor, dim: int, max_positions: int = 10_000) -> torch.Tensor:
    """[N] integer time steps -> [N, dim] sinusoids (sines, then cosines), as in diffusion models."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32, device=steps.device)
                            * -(math.log(max_positions) / (half - 1)))
    angles = steps.float()[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(embedding, (0, 1)) if dim % 2 else embedding


class PixelNorm(nn.Module):
    """Each vector scaled to unit root-mean-square, as StyleGAN's mapping network starts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class StyleModulation(nn.Module):
    """x * gamma + beta, with (gamma, beta) a linear function of the style vector."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.style_net = nn.Linear(style_dim, channels * 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style_net(style)[:, :, None, None].chunk(2, 1)
        return gamma * x + beta


class NoiseResNetBlock(nn.Module):
    """x + conv(relu(modulate(norm(x), z))): the reference's block as it computes."""

    def __init__(self, channels: int, style_dim: int, norm: NormLayer, dropout: bool) -> None:
        super().__init__()
        self.norm = norm(channels)
        self.adaptive = StyleModulation(channels, style_dim)
        layers: list[nn.Module] = [nn.ReLU(True), *([nn.Dropout(0.5)] if dropout else []), ReflectionPad2d(1),
                                   nn.Conv2d(channels, channels, 3, bias=conv_bias(norm)), norm(channels)]
        self.conv_fin = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.adaptive(self.norm(x), style)
        for layer in self.conv_fin:
            out = layer(out)
        return x + out


class NoiseResNetGenerator(nn.Module):
    """UNSB's generator: CUT's anti-aliased ResNet whose residual blocks are modulated by a noise
    vector z ([N, 4 ngf]) through a small mapping network. Called with z, it is one evaluation;
    called without, it translates in `steps` steps of the bridge (`bridge_translate`), drawing its
    noise from `seed`, one stream per image, so that a translation repeats exactly whatever the
    batch."""

    size_multiple = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: NormLayer = NORM_LAYERS["instance"], dropout: bool = False, mapping_layers: int = 3,
                 num_timesteps: int = 5, tau: float = 0.01) -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.ngf = ngf
        self.num_timesteps, self.tau = num_timesteps, tau
        self.steps, self.seed = num_timesteps, 0  # what a translation uses: set by the Translator
        layers: list[nn.Module] = [ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm(ngf),
                                   nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, c * 2, 3, padding=1, bias=bias), norm(c * 2), nn.ReLU(True), BlurDownsample(c * 2)]
        self.model = nn.Sequential(*layers)
        self.model_res = nn.ModuleList(NoiseResNetBlock(ngf * 4, ngf * 4, norm, dropout) for _ in range(n_blocks))
        up: list[nn.Module] = []
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            up += [BlurUpsample(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=bias), norm(c // 2), nn.ReLU(True)]
        up += [ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model_upsample = nn.Sequential(*up)
        mapping: list[nn.Module] = [PixelNorm(), nn.Linear(ngf * 4, ngf * 4), nn.LeakyReLU(0.2)]
        for _ in range(mapping_layers):
            mapping += [nn.Linear(ngf * 4, ngf * 4), nn.LeakyReLU(0.2)]
        self.z_transform = nn.Sequential(*mapping)

    @property
    def noise_dim(self) -> int:
        return self.ngf * 4

    def sampling(self, steps: int | None, seed: int) -> NoiseResNetGenerator:
        """This generator, its weights shared, translating in `steps` steps (None: all the trained
        ones) from noise `seed`."""
        return sampled(self, steps, seed)

    @property
    def encoder_layers(self) -> list[int]:
        """PatchNCE's layers, numbered through `model` then the blocks: the padded input, the two
        downsampling convs, residual blocks 1 and 5 (the reference's 0,4,8,12,16)."""
        first_block = len(self.model)
        return [0, 4, 8, first_block, first_block + min(4, len(self.model_res) - 1)]

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None,
                feature_layers: Sequence[int] | None = None) -> torch.Tensor | list[torch.Tensor]:
        """G(x, z); with `feature_layers`, the outputs of those layers (numbered as
        `encoder_layers`), running only as far as the last; without z, the whole translation."""
        if z is None:
            return bridge_translate(self, x, self.steps, self.seed)
        style = self.z_transform(z)
        if feature_layers is not None:
            wanted, features = set(feature_layers), []
            for i, layer in enumerate([*self.model, *self.model_res][: max(feature_layers) + 1]):
                x = layer(x, style) if isinstance(layer, NoiseResNetBlock) else layer(x)
                if i in wanted:
                    features.append(x)
            return features
        x = self.model(x)
        for block in self.model_res:
            x = block(x, style)
        return self.model_upsample(x)


def sampled(bridge, steps: int | None, seed: int):
    """A copy of `bridge` (a generator, or its ONNX graph: whatever has `num_timesteps`, `steps`
    and `seed`) that translates in `steps` steps (None: all the trained ones) from noise `seed`,
    sharing everything else."""
    steps = bridge.num_timesteps if steps is None else steps
    if not 1 <= steps <= bridge.num_timesteps:
        raise ValueError(f"steps must be 1 to {bridge.num_timesteps} (what the model was trained with), not {steps}")
    other = copy.copy(bridge)  # a new attribute dict; modules, weights and sessions are shared
    other.steps, other.seed = steps, seed
    return other


def bridge_times(num_timesteps: int) -> torch.Tensor:
    """The bridge's T + 1 times in [0, 1]: 0, then harmonic increments rescaled into [0.5, 1]."""
    increments = [0.0] + [1 / (i + 1) for i in range(num_timesteps - 1)]
    times = torch.tensor(increments, dtype=torch.float64).cumsum(0)
    times = times / times[-1]
    return torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * times[-1] + 0.5 * times]).float()


def bridge_step(x_t: torch.Tensor, prediction: torch.Tensor, times: torch.Tensor, t: int, tau: float,
                noise: torch.Tensor) -> torch.Tensor:
    """X_t from X_{t-1} and the generator's prediction of the target from it: their interpolation
    at the time step's share of what remains, plus Brownian noise of that step's variance."""
    delta = times[t] - times[t - 1]
    remaining = times[-1] - times[t - 1]
    share = delta / remaining
    variance = delta * (1 - share)
    return (1 - share) * x_t + share * prediction + (variance * tau).sqrt() * noise


def bridge_translate(generator, x: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """The translation in `steps` (1 to the trained number) steps of the bridge, as the paper's
    test.py computes it, each image drawing its noise from its own generator seeded with `seed`.
    `generator(x, z)`: one evaluation (the module, or its ONNX graph), with `num_timesteps`, `tau`
    and `noise_dim`."""
    times = bridge_times(generator.num_timesteps).to(x.device)
    streams = [torch.Generator().manual_seed(seed) for _ in range(len(x))]

    def draw(*shape: int) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in streams]).to(x.device, x.dtype)

    x_t, prediction = x, None
    for t in range(steps):
        if t > 0:
            x_t = bridge_step(x_t, prediction, times, t, generator.tau, draw(*x.shape[1:]))
        prediction = generator(x_t, draw(generator.noise_dim))
    return prediction


class TimeEmbedding(nn.Module):
    """[N] time steps -> [N, dim]: sinusoids through a two-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.main = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim), nn.LeakyReLU(0.2))

    def forward(self, time_index: torch.Tensor) -> torch.Tensor:
        return self.main(timestep_embedding(time_index, self.dim))


class TimeConditionedBlock(nn.Module):
    """conv -> + dense(time embedding) -> norm -> LeakyReLU -> blurred subsampling (if asked)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, norm: NormLayer | None, downsample: bool,
                 bias: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 4, stride=1, padding=1, bias=bias)
        self.dense = nn.Linear(time_dim, c_out)
        self.norm = norm(c_out) if norm is not None else nn.Identity()
        self.act = nn.LeakyReLU(0.2, True)
        self.down = BlurDownsample(c_out) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.norm(self.conv1(x) + self.dense(time)[..., None, None])))


class TimeConditionedPatchDiscriminator(nn.Module):
    """A 3-layer anti-aliased PatchGAN whose every block adds an embedding of the bridge's time
    step. Called with a second input, it judges the two concatenated along channels (UNSB's
    energy network, on (X_t, X_1) pairs)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3,
                 norm: NormLayer = NORM_LAYERS["instance"]) -> None:
        super().__init__()
        bias = conv_bias(norm)
        time_dim = 4 * ndf
        blocks = [TimeConditionedBlock(in_channels, ndf, time_dim, None, True, bias)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            blocks.append(TimeConditionedBlock(ndf * prev, ndf * mult, time_dim, norm, n < n_layers, bias))
        self.model_main = nn.ModuleList(blocks)
        self.final_conv = nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)
        self.t_embed = TimeEmbedding(time_dim)

    def forward(self, x: torch.Tensor, time_index: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        time = self.t_embed(time_index)
        out = x if x2 is None else torch.cat([x, x2], dim=1)
        for block in self.model_main:
            out = block(out, time)
        return self.final_conv(out)
