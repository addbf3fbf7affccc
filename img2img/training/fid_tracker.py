"""FID/KID of the generators on the validation split during training."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..files import atomic_write
from ..io.pixel_format import PixelFormat, describe_preview, preview_rgb
from ..log import logger
from ..methods import METHODS
from ..metrics import (
    InceptionFeatures,
    Statistics,
    WeightsUnavailable,
    kid,
    load_statistics,
    save_statistics,
)

# (inputs, direction) -> the generator's outputs, on the host.
Translate = Callable[[torch.Tensor, str], torch.Tensor]


def domain_images(val_set) -> tuple[torch.Tensor, torch.Tensor]:
    """All validation A images and all B images, each once, at the training size."""
    n_a = len(getattr(val_set, "files_a", val_set))
    n_b = len(getattr(val_set, "files_b", val_set))
    items = [val_set[i] for i in range(max(n_a, n_b))]
    items = [it if "error" not in it else None for it in items]
    a = [it["A"] for it in items[:n_a] if it is not None]
    b = [it["B"] for it in items[:n_b] if it is not None]
    return torch.stack(a), torch.stack(b)


def native_metrics(fakes: torch.Tensor, targets: torch.Tensor, fmt: PixelFormat) -> dict[str, float]:
    """L1, PSNR and SSIM of translations against their targets in the domain's own units (HU,
    16-bit levels, ...): both in [-1, 1], mapped back onto the format's range."""
    half = (fmt.hi - fmt.lo) / 2
    diff = (fakes.double().clamp(-1, 1) - targets.double().clamp(-1, 1)) * half
    mse = diff.pow(2).mean().item()
    psnr = 10 * np.log10((fmt.hi - fmt.lo) ** 2 / mse) if mse > 0 else float("inf")
    return {"val_l1": diff.abs().mean().item(), "val_psnr": float(psnr),
            "val_ssim": ssim(fakes.double().clamp(-1, 1) + 1, targets.double().clamp(-1, 1) + 1)}


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5, radius: int = 5) -> float:
    """The mean structural similarity (Wang et al. 2004) of two [N, C, H, W] batches in [0, 2]
    (its luminance term is not shift-invariant: the range starts at 0, as 8-bit levels do): each
    channel with an 11x11 Gaussian window of sigma 1.5 over the valid region, as scikit-image's
    structural_similarity(gaussian_weights=True, use_sample_covariance=False)."""
    x = torch.arange(-radius, radius + 1, dtype=a.dtype)
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(a.shape[1], 1, -1, -1).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, window, groups=a.shape[1])

    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # the constants for a data range of 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean().item()


class FIDTracker:
    """Translates the validation inputs with the current generators and compares their Inception
    features with the real targets' statistics, which are computed once and cached in the run.
    Inception sees 8-bit RGB previews (pixel_format's preview rule: one channel repeated, more
    than three through the preview channels), and each row says which. For paired data it also
    gives the val L1 and PSNR in the output's own units, with or without Inception weights."""

    def __init__(self, out: Path, val_set, method, weights: str | None, device: torch.device,
                 required: bool = True) -> None:
        self.out = out
        # Asked for explicitly (--fid-every): missing weights are a warning; by default, a note.
        self.required = required
        self.method = method
        self.weights = weights
        self.device = device
        self.extractor: InceptionFeatures | None = None
        self.disabled_reason: str | None = None
        self.inputs_a, self.inputs_b = domain_images(val_set)

    def evaluate(self) -> dict[str, float | str] | None:
        """{val_l1, val_psnr (paired data), fid_AtoB, kid_AtoB, fid_channels_AtoB, ...}, or None
        when there is nothing to report (FID unavailable is warned once)."""
        results = self._native_metrics() if self.method.spec.dataset_kind == "paired" else {}
        results.update(self._fid() or {})
        return results or None

    def native(self) -> dict[str, float]:
        """val L1, PSNR and SSIM (paired data), without Inception; {} for unpaired data."""
        return self._native_metrics() if self.method.spec.dataset_kind == "paired" else {}

    def _native_metrics(self) -> dict[str, float]:
        fakes = translate_in_chunks(self._translate, self.inputs_a, "AtoB")
        return native_metrics(fakes, self.inputs_b, PixelFormat.of_model(self.method.model_cfg, "out"))

    def _translate(self, inputs: torch.Tensor, direction: str) -> torch.Tensor:
        return self.method.translate(inputs.to(self.device), direction).cpu()

    def _fid(self) -> dict[str, float | str] | None:
        if self.disabled_reason is not None:
            return None
        if self.extractor is None:
            try:
                self.extractor = InceptionFeatures(self.weights, self.device)
            except WeightsUnavailable as e:
                self.disabled_reason = str(e)
                if self.required:
                    logger.warning(f"warning: FID is skipped for this run: {e}")
                else:
                    logger.info(f"FID is skipped for this run: {e}")
                return None
        try:
            return generator_fid(self._translate, list(self.method.spec.generator_keys), self.inputs_a, self.inputs_b,
                                 self.extractor, self.method.preview_channels, self._real_statistics)
        except ValueError as e:  # pytorch-fid's fallback: sqrtm left a large imaginary part
            logger.warning(f"warning: FID not computed this time: {e}")
            return None

    def _real_statistics(self, direction: str, targets: torch.Tensor) -> Statistics:
        """Cached in the run folder; recomputed if they were made with other Inception weights."""
        path = self.out / f"fid_real_{direction}.npz"
        if path.is_file():
            cached = load_statistics(path)
            if cached.weights_id == self.extractor.source.id and cached.features is not None:
                return cached
        stats = Statistics.of(self.extractor.from_tensors(targets), self.extractor.source)
        save_statistics(path, stats)
        return stats


def plot_fid(rows: list[dict], path: Path) -> None:
    """FID against epoch, one line per direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    keys = sorted({k for r in rows for k in r if k.startswith(("fid_AtoB", "fid_BtoA")) and "channels" not in k})
    for key in keys:
        points = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        if points:
            ax.plot(*zip(*points), marker="o", label=key.removeprefix("fid_"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("FID (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def mean_fid(results: dict[str, float | str]) -> float:
    return float(np.mean([v for k, v in results.items() if k in ("fid_AtoB", "fid_BtoA")]))


def checkpoint_fid(checkpoint: Path | str, data: str | None = None, weights: str | None = None,
                   device: torch.device | str = "cpu") -> dict[str, float | str]:
    """{fid_AtoB, kid_AtoB, ...} of a checkpoint, snapshot or export: its generators translate the
    validation split of `data` (default: the folder it trained on) at its training size, and
    their outputs are compared with the split's real targets, as FID tracking does in training."""
    from ..data.builders import build_val_dataset
    from ..errors import Img2ImgError
    from ..persist.checkpoint import checkpoint_config, load_checkpoint
    from ..translate.translator import Translator

    cfg = checkpoint_config(load_checkpoint(checkpoint, mmap=True))
    if data:
        cfg.data.root = str(data)
    val = build_val_dataset(cfg, METHODS[cfg.method].dataset_kind)
    if val is None:
        raise Img2ImgError(f"{cfg.data.root}: no validation split (val/, test/, testA+testB) to compute FID on; "
                           "point --data at a dataset folder that has one")
    translator = Translator.from_checkpoint(checkpoint, device=str(device), engine="torch")
    extractor = InceptionFeatures(weights, device)
    inputs_a, inputs_b = domain_images(val)

    def real_statistics(direction: str, targets: torch.Tensor) -> Statistics:
        return Statistics.of(extractor.from_tensors(targets), extractor.source)

    return generator_fid(translator.translate_tensor, translator.directions, inputs_a, inputs_b, extractor,
                         cfg.data.preview_channels, real_statistics)


def translate_in_chunks(translate: Translate, inputs: torch.Tensor, direction: str, chunk: int = 16) -> torch.Tensor:
    return torch.cat([translate(inputs[i : i + chunk], direction) for i in range(0, len(inputs), chunk)])


def generator_fid(translate: Translate, directions: list[str], inputs_a: torch.Tensor, inputs_b: torch.Tensor,
                  extractor: InceptionFeatures, chosen: tuple[int, ...] | None,
                  real_statistics: Callable[[str, torch.Tensor], Statistics]) -> dict[str, float | str]:
    """The FID loop of training and `img2img fid --checkpoint`: {fid_D, kid_D, fid_channels_D}
    per direction D, and the Inception weights' label. `translate(inputs, direction)` gives the
    generator's outputs on the host; Inception sees 8-bit RGB previews of them (`chosen`: the
    preview channels) against `real_statistics(direction, previews of the real targets)`. A
    covariance that admits no FID raises ValueError."""
    results: dict[str, float | str] = {}
    for direction in directions:
        inputs, targets = (inputs_a, inputs_b) if direction == "AtoB" else (inputs_b, inputs_a)
        real = real_statistics(direction, preview_rgb(targets, chosen))
        fakes = preview_rgb(translate_in_chunks(translate, inputs, direction), chosen)
        fake = Statistics.of(extractor.from_tensors(fakes), extractor.source)
        results[f"fid_{direction}"] = fake.distance(real)
        results[f"kid_{direction}"] = kid(fake.features, real.features, subsets=50)[0]
        results[f"fid_channels_{direction}"] = describe_preview(targets.shape[1], chosen)
    results["inception_weights"] = extractor.source.label
    return results
