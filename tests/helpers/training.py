"""Tiny methods and run flags, and checks that a resumed run is bit for bit an uninterrupted one."""
from __future__ import annotations

import torch

from img2img.cli import main
from img2img.config import SpeedConfig, TrainConfig
from img2img.methods import TrainingMethod, build_method, new_run_config
from img2img.persist.checkpoint import load_checkpoint


def tiny_method(method: str, device: str = "cpu", **settings) -> TrainingMethod:
    """The one builder of small methods for tests: seeded, a 32-px U-Net (pix2pix, colourisation)
    or a 6-block ResNet with 8 filters, CUT's heads at 32 patches of width 16. `settings` are
    fields of SpeedConfig, ModelConfig or the method's Config, each put where it belongs."""
    torch.manual_seed(0)
    speed = {k: settings.pop(k) for k in list(settings) if k in SpeedConfig.__dataclass_fields__}
    cfg = new_run_config(method, train=TrainConfig(device=device, speed=SpeedConfig(**speed)))
    cfg.model.netG = "unet_32" if cfg.model.netG.startswith("unet") else "resnet_6blocks"
    cfg.model.ngf = cfg.model.ndf = 8
    if method in ("cut", "fastcut", "unsb"):
        cfg.method_config.num_patches, cfg.method_config.nce_dim = 32, 16
    for name, value in settings.items():
        setattr(cfg.model if hasattr(cfg.model, name) else cfg.method_config, name, value)
    return build_method(cfg, torch.device(device))


TINY_PIX2PIX = ["--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--size", "32", "--load-size", "36",
                "--num-workers", "0", "--log-every", "1", "--device", "cpu"]


TINY_CYCLEGAN = ["--model", "cyclegan", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32",
                 "--load-size", "36", "--num-workers", "0", "--log-every", "1", "--device", "cpu"]


TINY_CUT = ["--model", "cut", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32",
            "--load-size", "36", "--num-workers", "0", "--log-every", "1", "--device", "cpu", "--num-patches", "64"]
TINY_UNSB = [*TINY_CUT[2:], "--model", "unsb"]


def compare_states(a, b, path=""):
    """Every tensor bitwise equal; returns the number of tensors compared."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return sum(compare_states(a[k], b[k], f"{path}/{k}") for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        return sum(compare_states(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
        return 1
    assert a == b, path
    return 0


def assert_resume_is_bitwise(flags: list[str], tmp_path, stop: int, end: int, tensors: int = 10) -> dict:
    """Trains straight to step `end`, and to `stop` then resumed to `end`; the two checkpoints
    must hold bitwise-equal state (more than `tensors` tensors). Returns the resumed one."""
    main(["train", *flags, "--out", str(tmp_path / "straight"), "--max-steps", str(end)])
    main(["train", *flags, "--out", str(tmp_path / "resumed"), "--max-steps", str(stop)])
    main(["train", "--resume", "auto", "--out", str(tmp_path / "resumed"), "--max-steps", str(end)])
    straight = load_checkpoint(tmp_path / "straight/checkpoints/latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed/checkpoints/latest.pt")
    for state in (straight, resumed):
        del state["config"]["train"]["out"], state["config"]["train"]["max_steps"]
    assert compare_states(straight, resumed) > tensors
    return resumed
