"""--cuda-graphs: the whole guarded training step, both updates included, captured once as one
CUDA graph and replayed, so that a step costs one launch instead of hundreds (at batch 1 the
step is bound by kernel launches, not by the GPU's work)."""
from __future__ import annotations

import torch

from ..config import SpeedConfig
from ..errors import Img2ImgError
from ..methods import TrainingMethod
from .guard import guarded_step

# Eager steps before the capture, as CUDA graphs need: they create the optimizer state and
# let cuDNN choose its algorithms. They are real training steps, on a side stream.
WARMUP_STEPS = 3


def check_capturable(speed: SpeedConfig, device: torch.device, method: TrainingMethod | None = None) -> None:
    """Refuse, in one line, a run whose step cannot be captured."""
    if not speed.cuda_graphs:
        return
    if device.type != "cuda":
        raise Img2ImgError(f"--cuda-graphs needs CUDA; this run is on {device.type}")
    if not speed.fused_adam:
        raise Img2ImgError("--cuda-graphs needs the fused Adam, whose step counter lives on the device: "
                           "drop --no-fused-adam")
    if speed.compile:
        raise Img2ImgError("--cuda-graphs captures the eager step: leave --compile off")
    if method is None:
        return
    if method.distributed:
        raise Img2ImgError("--cuda-graphs runs in one process: leave it off under torchrun")
    if differentiates_input_gradient(method):
        raise Img2ImgError("--cuda-graphs does not capture the double backward through D that --gan-mode wgangp and "
                           "--r1-gamma take (not measured on GPU): leave --cuda-graphs off, or train without them")
    if method.host_draws:
        raise Img2ImgError(f"--cuda-graphs: {type(method).__name__} {method.host_draws}, which a captured graph "
                           "would freeze; leave --cuda-graphs off")


def differentiates_input_gradient(method: TrainingMethod) -> bool:
    """Whether the discriminator step differentiates D's input gradient (WGAN-GP, R1)."""
    cfg = method.cfg
    return getattr(cfg, "gan_mode", None) == "wgangp" or getattr(cfg, "r1_gamma", 0.0) > 0


def make_capturable(method: TrainingMethod) -> None:
    """Ready each optimizer for capture: `capturable` set (torch refuses to capture a step
    without it), and the learning rate a device tensor, which fused Adam reads at each replay and
    the LR schedulers fill in place at each epoch's decay (a float would be captured once)."""
    for opt in method.optimizers.values():
        for group in opt.param_groups:
            group["capturable"] = True
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=method.device)


class CapturedStep:
    """Call as `guarded_step(method, batch)`. The batch is copied into static input buffers and
    the graph replayed; the losses come back in static tensors, valid until the next call.

    The capture holds because the step reads nothing on the host (tests/training/test_speed.py), draws
    dropout masks and the image pool's choices from the device RNG (which the graph advances at
    each replay), and reads its learning rate from a tensor. Shapes must stay those captured:
    a batch of another shape (the partial last batch of an epoch) runs eagerly.
    """

    def __init__(self, method: TrainingMethod, warmup: int = WARMUP_STEPS) -> None:
        check_capturable(method.speed, method.device, method)
        make_capturable(method)
        self.method = method
        self.warmup = warmup
        self.eager_steps = 0
        self.side_stream = torch.cuda.Stream(method.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.layout: dict | None = None
        self.static_batch: dict = {}
        self.static_out: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None

    @staticmethod
    def _layout(batch: dict) -> dict:
        return {k: (v.shape, v.dtype, v.stride()) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def __call__(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self.graph is not None and self._layout(batch) != self.layout:
            return guarded_step(self.method, batch)
        if self.eager_steps < self.warmup:
            self.eager_steps += 1
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                out = guarded_step(self.method, batch)
            torch.cuda.current_stream().wait_stream(self.side_stream)
            return out
        if self.graph is None:
            self._capture(batch)
        for k, v in self.static_batch.items():
            if isinstance(v, torch.Tensor):
                v.copy_(batch[k], non_blocking=True)
        self.graph.replay()
        return self.static_out

    def _capture(self, batch: dict) -> None:
        """Record one step on the static buffers. Capturing runs nothing: `__call__` replays it
        for this batch straight after."""
        self.layout = self._layout(batch)
        self.static_batch = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        torch.cuda.synchronize(self.method.device)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the data loader's pin-memory thread and the checkpoint writer go on
        # calling CUDA (pinned allocations) during the capture, which "global" would forbid.
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.static_out = guarded_step(self.method, self.static_batch)
