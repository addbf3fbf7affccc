"""The small interface the Trainer calls. A method owns its networks and optimizers."""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..models.norm import per_image_batch_norm


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


def adam(params, train: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=train.lr, betas=(train.beta1, train.beta2))


class TrainingMethod:
    """Subclasses build `self.networks` and `self.optimizers` and implement the three methods below.

    `training_step` returns detached loss tensors; the Trainer decides when to move them to
    the host, so a step never waits for the device.
    """

    # Which entry of `networks` translates in each direction; inference loads only these.
    generator_keys: dict[str, str] = {}

    def __init__(self, cfg: ModelConfig, device: torch.device, amp: bool = False) -> None:
        self.cfg = cfg
        self.device = device
        self.amp = amp and device.type == "cuda"
        self.networks = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.log_grad_norm = False

    def optimize(self, name: str, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backpropagate `loss` and step optimizer `name`, unless the loss is not finite: then the
        update is skipped, so one bad batch cannot write NaN into the weights."""
        opt = self.optimizers[name]
        loss.backward()
        logs = {}
        if self.log_grad_norm:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            logs[f"grad_norm_{name}"] = torch.nn.utils.clip_grad_norm_(params, float("inf")).detach()
        if torch.isfinite(loss):
            opt.step()
        return logs

    def snapshot(self) -> Any:
        """State a forward pass changes outside the optimizers (BatchNorm statistics, pools), to
        undo a step whose loss was not finite. Cheap: buffers are small and pools are lists."""
        return {name: buf.clone() for name, buf in self.networks.named_buffers()}

    def restore(self, snapshot: Any) -> None:
        buffers = dict(self.networks.named_buffers())
        for name, value in snapshot.items():
            buffers[name].copy_(value)

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images for the sample grid, as [rows, columns, C, H, W] in [-1, 1]."""
        raise NotImplementedError

    def generator(self, direction: str = "AtoB") -> nn.Module:
        if direction not in self.generator_keys:
            raise ValueError(f"{self.cfg.method} translates {' and '.join(self.generator_keys)}, not {direction!r}")
        return self.networks[self.generator_keys[direction]]

    def train(self) -> None:
        self.networks.train()

    def extra_state(self) -> dict[str, Any]:
        """State beyond networks and optimizers (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {name: net.state_dict() for name, net in self.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any], networks_only: bool = False) -> None:
        for name, net in self.networks.items():
            net.load_state_dict(state["networks"][name])
        if networks_only:
            return
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.load_extra_state(state.get("extra", {}))

    @torch.no_grad()
    def _eval_forward(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The forward inference uses (see Translator), leaving training state (BN running
        statistics, RNG) untouched."""
        was_training = net.training
        net.eval()
        try:
            with self.autocast(), per_image_batch_norm(net):
                return net(x).float()
        finally:
            net.train(was_training)
