"""Colourisation (the pix2pix paper's black-and-white -> colour): pix2pix's losses and networks
from the Lab lightness L of a photo to its colour ab, trained on any folder of colour photos.

Users give and get 8-bit RGB: a colour input is greyed (its L), and the output keeps the input's
L, at its full resolution, with the predicted ab (8-bit sRGB; a colour outside sRGB loses chroma,
never lightness), so its lightness equals the input's up to 8-bit rounding.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import Direction, ModelConfig
from ..io.lab import AB_RANGE, L_RANGE, as_rgb, lab_to_rgb, lab_to_rgb_keeping_lightness, rgb_to_lab
from ..io.pixel_format import PixelFormat
from .pix2pix import RECIPES, Pix2Pix, Pix2PixConfig
from .spec import MethodSpec, PixelCodec

RGB = PixelFormat(3, "uint8", 0.0, 255.0)


class LabCodec(PixelCodec):
    """RGB outside, Lab's L in and ab out of the generator."""

    def user_formats(self, direction: Direction) -> tuple[PixelFormat, PixelFormat]:
        return RGB, RGB

    def to_network(self, pixels: np.ndarray) -> np.ndarray:
        return rgb_to_lab(as_rgb(pixels))[..., :1]

    def from_network(self, source: np.ndarray, result: np.ndarray) -> np.ndarray:
        lightness = rgb_to_lab(as_rgb(source))[..., :1]
        return lab_to_rgb_keeping_lightness(np.concatenate([lightness, result.astype(np.float32)], axis=2))


class Colorization(Pix2Pix):
    sample_columns = ("grey input", "output", "original")

    def sample(self, batch):
        """Per photo: grey input | output | original."""
        lightness, colour = batch["A"], batch["B"]
        predicted = self.translate(lightness)
        return self.grid_columns(lightness, self._rgb(lightness, predicted), self._rgb(lightness, colour))

    def _rgb(self, lightness: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] L and [N, 2, H, W] ab (both in [-1, 1]) -> [N, 3, H, W] RGB in [-1, 1]."""
        l_format, ab_format = (PixelFormat.of_model(self.model_cfg, side) for side in ("in", "out"))
        images = [RGB.encode(lab_to_rgb(np.concatenate([l_format.decode_tensor(l), ab_format.decode_tensor(ab)], 2)))
                  for l, ab in zip(lightness, colour)]
        return torch.stack(images).to(lightness.device)


def lab_model() -> ModelConfig:
    return ModelConfig(in_channels=1, out_channels=2, in_dtype="float32", out_dtype="float32", in_range=L_RANGE,
                       out_range=AB_RANGE)


SPEC = MethodSpec(config=Pix2PixConfig, dataset_kind="colour", generator_keys={"AtoB": "G"}, training=Colorization,
                  ema_keys={"G": "G_ema"}, recipes=RECIPES, default_model=lab_model,
                  default_domains=("black-and-white photo", "colour"), codec=LabCodec())
