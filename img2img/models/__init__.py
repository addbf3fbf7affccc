import dataclasses
import math

from ..config import AUTO_UNET
from ..errors import Img2ImgError
from .discriminators import DISCRIMINATORS, PatchDiscriminator, PixelDiscriminator, build_discriminator
from .generators import (
    GENERATOR_BUILDERS,
    ResNetGenerator,
    UNetGenerator,
    build_generator,
    generator_size_multiple,
    unet_for_size,
)
from .init import init_weights
from .norm import NORM_LAYERS, PerImageBatchNorm2d, norm_layer


def fit_to_size(model, size: int | tuple[int, int]):
    """`model` (a ModelConfig) with its concrete generator for training crops of `size` (N, or
    (width, height)); `unet` picks the deepest U-Net that both sides fit. Both networks are
    checked against both sides; an Img2ImgError names what fits."""
    width, height = (size, size) if isinstance(size, int) else size
    try:
        _check_discriminator_fits(model, min(width, height))
        return dataclasses.replace(model, netG=_fitting_generator(model.netG, width, height))
    except ValueError as e:
        raise Img2ImgError(str(e)) from None


def _fitting_generator(netG: str, width: int, height: int) -> str:
    shown = str(width) if width == height else f"{width}x{height}"
    if netG == AUTO_UNET:
        try:
            netG = unet_for_size(math.gcd(width, height))
        except ValueError:
            fits = "x".join(str(max(32, side // 32 * 32)) for side in dict.fromkeys((width, height)))
            needs = "a multiple" if width == height else "multiples"
            raise ValueError(f"--size {shown}: a U-Net needs {needs} of 32 (e.g. {fits}); or use --netG "
                             "resnet_9blocks, which takes multiples of 4") from None
    multiple = generator_size_multiple(netG)
    if width % multiple or height % multiple:
        fits = "x".join(str(max(multiple, side // multiple * multiple)) for side in dict.fromkeys((width, height)))
        hint = " or --netG unet (picks the depth)" if netG.startswith("unet_") else ""
        raise ValueError(f"--size {shown} does not fit --netG {netG}, which needs multiples of {multiple}: "
                         f"use --size {fits}{hint}")
    return netG


def _check_discriminator_fits(model, size: int) -> None:
    n_layers = model.n_layers_d
    if model.netD == "patch" and PatchDiscriminator.output_size(size, n_layers) < 1:
        depth = max((n for n in range(1, n_layers) if PatchDiscriminator.output_size(size, n) >= 1), default=0)
        fits = f"--n-layers-d {depth}" if depth else "--netD pixel"
        raise ValueError(f"--size {size} is too small for a {n_layers}-layer PatchGAN: use {fits}, or a larger --size")
    if model.netD == "multiscale" and PatchDiscriminator.output_size(_coarsest_scale(size, model.num_d), n_layers) < 1:
        scales = max((k for k in range(1, model.num_d)
                      if PatchDiscriminator.output_size(_coarsest_scale(size, k), n_layers) >= 1), default=0)
        fits = f"--num-d {scales}" if scales else "a smaller --n-layers-d"
        raise ValueError(f"--size {size} is too small for a {model.num_d}-scale discriminator: its coarsest scale sees "
                         f"{_coarsest_scale(size, model.num_d)} px, too few for a {n_layers}-layer PatchGAN; use {fits}, "
                         "or a larger --size")


def _coarsest_scale(size: int, num_d: int) -> int:
    """Side of the input to a multiscale discriminator's last scale (3x3 average pools, stride 2, padding 1)."""
    for _ in range(num_d - 1):
        size = (size + 1) // 2
    return size


__all__ = [
    "AUTO_UNET",
    "DISCRIMINATORS",
    "GENERATOR_BUILDERS",
    "NORM_LAYERS",
    "PatchDiscriminator",
    "PerImageBatchNorm2d",
    "PixelDiscriminator",
    "ResNetGenerator",
    "UNetGenerator",
    "build_discriminator",
    "build_generator",
    "fit_to_size",
    "generator_size_multiple",
    "init_weights",
    "norm_layer",
]
