from .discriminators import PatchDiscriminator, PixelDiscriminator, build_discriminator
from .generators import ResNetGenerator, UNetGenerator, build_generator
from .init import init_weights

__all__ = [
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResNetGenerator",
    "UNetGenerator",
    "build_discriminator",
    "build_generator",
    "init_weights",
]
