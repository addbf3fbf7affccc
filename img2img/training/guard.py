"""Crash safety of a step: a step whose loss is not finite is undone, so one bad batch cannot
write NaN into the weights, and nothing waits for the device to decide it."""
from __future__ import annotations

import torch
import torch.distributed as dist

from ..methods import TrainingMethod


def guarded_step(method: TrainingMethod, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One training step, undone outside the optimizers if any loss was not finite (on any
    rank). The optimizers skip such a step themselves (`TrainingMethod.optimize`); the state a
    forward pass changes besides (BatchNorm statistics, image pools) is put back from the
    method's `snapshot`. Returns the losses and a device bool `bad`."""
    snapshot = method.snapshot()
    losses = method.training_step(batch)
    bad = ~torch.isfinite(torch.stack([v.float() for v in losses.values()])).all()
    if method.distributed:
        bad_any = bad.float()
        dist.all_reduce(bad_any, op=dist.ReduceOp.MAX)
        bad = bad_any.bool()
    method.undo_if(bad, snapshot)
    return losses, bad
