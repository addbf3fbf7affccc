"""CIE Lab maths for colourisation: 8-bit sRGB to Lab and back, the ranges of L and ab, and a
conversion back to sRGB that keeps lightness. A leaf: numpy, and cv2 (OpenCV) where a conversion
runs, imported there so that loading the methods does not load OpenCV."""
from __future__ import annotations

import numpy as np

# What L and ab span in CIE Lab (cv2's float conversion): L in [0, 100], a and b within about
# +-110 for sRGB colours. Their ranges map onto the networks' [-1, 1].
L_RANGE, AB_RANGE = (0.0, 100.0), (-110.0, 110.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 sRGB -> H x W x 3 float32 Lab."""
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """H x W x 3 float32 Lab -> H x W x 3 uint8 sRGB (colours outside sRGB clipped)."""
    import cv2

    rgb = cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# CIE Lab -> XYZ (D65 white, as cv2) -> linear sRGB, unclipped: cv2's own conversion clips to
# [0, 1], so it cannot say which colours lie outside sRGB.
_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)
_XYZ_TO_RGB = np.array([[3.240479, -1.53715, -0.498535], [-0.969256, 1.875991, 0.041556],
                        [0.055648, -0.204043, 1.057311]], np.float32)


def _linear_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[:, 0] + 16) / 116
    f = np.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], axis=1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    return xyz @ _XYZ_TO_RGB.T


def lab_to_rgb_keeping_lightness(lab: np.ndarray, steps: int = 12) -> np.ndarray:
    """As `lab_to_rgb`, but a colour outside sRGB keeps its lightness: its chroma (ab) is scaled
    down, by bisection, until the colour fits, instead of each RGB channel being clipped."""
    flat = np.ascontiguousarray(lab, dtype=np.float32).reshape(-1, 3).copy()
    margin = 1e-4

    def fits(values: np.ndarray) -> np.ndarray:
        rgb = _linear_rgb(values)
        return ((rgb >= -margin) & (rgb <= 1 + margin)).all(axis=1)

    outside = np.flatnonzero(~fits(flat))
    if len(outside):
        low, high = np.zeros(len(outside), np.float32), np.ones(len(outside), np.float32)
        for _ in range(steps):
            middle = (low + high) / 2
            trial = flat[outside].copy()
            trial[:, 1:] *= middle[:, None]
            inside = fits(trial)
            low, high = np.where(inside, middle, low), np.where(inside, high, middle)
        flat[outside, 1:] *= low[:, None]
    return lab_to_rgb(flat.reshape(lab.shape))


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """8-bit grey or RGB(A) pixels as RGB."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[..., :3]
