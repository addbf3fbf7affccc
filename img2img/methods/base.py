"""The small interface the Trainer calls. A method owns its networks and optimizers."""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import nn

from ..config import Direction, ModelConfig, SpeedConfig, TrainConfig
from ..io.pixel_format import preview_rgb
from .spec import MethodSpec


def memory_format(speed: SpeedConfig) -> torch.memory_format:
    """The layout `--channels-last` asks of networks and batches."""
    return torch.channels_last if speed.channels_last else torch.contiguous_format


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


class TrainingMethod:
    """How a method trains: its networks and optimizers, the losses of a step, and the sample
    grid's layout. What the method is (settings, data, generator keys, codec) is its
    `MethodSpec` (`self.spec`). Subclasses build `self.networks` and `self.optimizers` (with
    `self.adam`) and implement `training_step`, `sample` and, if they keep any, `extra_state`.

    `training_step` returns detached loss tensors and never reads them on the host, so a step
    never waits for the device; the Trainer reads them every `log_every` steps. A network whose own weights a loss updates is called through `self.updating(name)`: under
    torchrun that is its DistributedDataParallel wrapper (`training.distributed.distribute` fills
    `self.distributed`), which averages the gradients across ranks. A network only passed through
    (D in the generator update) is called directly.
    """

    # Set where a step draws on the host (what a captured CUDA graph would freeze): the reason.
    host_draws: ClassVar[str] = ""
    sample_columns: ClassVar[tuple[str, ...]] = ()  # what the sample grid's columns show, for people

    def __init__(self, spec: MethodSpec, model: ModelConfig, config: Any, train: TrainConfig,
                 device: torch.device, speed: SpeedConfig) -> None:
        self.spec = spec
        self.model_cfg = model
        self.cfg = config
        self.train_cfg = train
        self.device = device
        self.speed = speed
        self.networks = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # DistributedDataParallel wrappers by network name, under torchrun (training.distributed).
        self.distributed: dict[str, nn.Module] = {}
        self.log_grad_norm = False
        # Which channels sample grids show of data with more than three (--preview-channels).
        self.preview_channels: tuple[int, ...] | None = None

    def adam(self, params, lr: float | None = None) -> torch.optim.Adam:
        t = self.train_cfg
        return torch.optim.Adam(params, lr=lr or t.lr, betas=(t.beta1, t.beta2), fused=self.speed.fused_adam or None)

    def prepare_networks(self) -> None:
        """Memory format and compilation; subclasses call it once their networks exist."""
        for net in self.networks.values():
            net.to(memory_format=memory_format(self.speed))
        if self.speed.compile:
            self.compile_networks()

    def compile_networks(self) -> None:
        # In place (nn.Module.compile), so state_dict keys and optimizer references are unchanged.
        for net in self.networks.values():
            net.compile()

    def updating(self, name: str) -> nn.Module:
        return self.distributed.get(name) or self.networks[name]

    def optimize(self, name: str, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backpropagate `loss` and step optimizer `name`, unless the loss is not finite (on any
        rank): then the update is skipped, so one bad batch cannot write NaN into the weights."""
        opt = self.optimizers[name]
        loss.backward()
        logs = {}
        if self.log_grad_norm:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            logs[f"grad_norm_{name}"] = torch.nn.utils.clip_grad_norm_(params, float("inf")).detach()
        found_inf = (~torch.isfinite(loss.detach())).float()
        if self.distributed:
            dist.all_reduce(found_inf, op=dist.ReduceOp.MAX)
        if self.speed.fused_adam:
            step_unless_found_inf(opt, found_inf)
        elif not found_inf:  # the unfused optimizers cannot skip on the device: one host sync
            opt.step()
        return logs

    def snapshot(self) -> Any:
        """State a forward pass changes outside the optimizers (BatchNorm statistics, pools), to
        undo a step whose loss was not finite. Cheap: buffers are small and pools are lists."""
        return {name: buf.clone() for name, buf in self.networks.named_buffers()}

    def undo_if(self, bad: torch.Tensor, snapshot: Any) -> None:
        """Put the snapshot back where `bad` (a device bool) is set, without reading it on the host."""
        buffers = dict(self.networks.named_buffers())
        for name, saved in snapshot.items():
            buffers[name].copy_(torch.where(bad, saved, buffers[name]))

    def autocast(self):
        if not self.speed.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images for the sample grid, as [rows, columns, 3, H, W] in [-1, 1] (`grid_columns`)."""
        raise NotImplementedError

    def grid_columns(self, *columns: torch.Tensor) -> torch.Tensor:
        """[N, C_i, H, W] columns of any channel counts -> [N, columns, 3, H, W] previews."""
        return torch.stack([preview_rgb(c, self.preview_channels) for c in columns], dim=1)

    def generator(self, direction: Direction = "AtoB") -> nn.Module:
        keys = self.spec.generator_keys
        if direction not in keys:
            raise ValueError(f"{type(self).__name__} translates {' and '.join(keys)}, not {direction!r}")
        return self.networks[self.spec.translating_key(direction, self.networks)]

    def train(self) -> None:
        self.networks.train()

    def extra_state(self) -> dict[str, Any]:
        """State beyond networks and optimizers (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        optimizers = {name: opt.state_dict() for name, opt in self.optimizers.items()}
        for state in optimizers.values():
            for group in state["param_groups"]:  # copies: the optimizer keeps its own
                if isinstance(group["lr"], torch.Tensor):  # a CUDA graph's (training/cuda_graph.py)
                    group["lr"] = group["lr"].item()
        return {
            "networks": {name: net.state_dict() for name, net in self.networks.items()},
            "optimizers": optimizers,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks.items():
            net.load_state_dict(state["networks"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.load_extra_state(state.get("extra", {}))

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: Direction = "AtoB") -> torch.Tensor:
        """`x` translated in `direction` as inference translates (see Translator), for samples and
        FID during training."""
        return self.eval_forward(self.generator(direction), x)

    @torch.no_grad()
    def eval_forward(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The forward inference uses: eval mode, so BatchNorm uses each image's statistics and
        training state (running statistics, RNG) is untouched. `net.forward` bypasses a compiled
        wrapper, which would otherwise recompile for eval mode."""
        was_training = net.training
        net.eval()
        try:
            with self.autocast():
                return net.forward(x.contiguous(memory_format=memory_format(self.speed))).float()
        finally:
            net.train(was_training)


def step_unless_found_inf(opt: torch.optim.Optimizer, found_inf: torch.Tensor) -> None:
    """Step a fused optimizer unless `found_inf` (a device float, 1.0 = skip) is set, without a
    host sync. This is the protocol torch's fused optimizers share with GradScaler, which sets
    the same two attributes around `step` (torch/amp/grad_scaler.py); GradScaler itself is not
    used because it tests gradients, not the loss, and rescales the loss on every bad step.
    tests/training/test_crash_safety.py fails if a torch release stops honouring it."""
    opt.grad_scale, opt.found_inf = None, found_inf
    try:
        opt.step()
    finally:
        del opt.grad_scale, opt.found_inf
