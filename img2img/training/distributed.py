"""Process-group setup under torchrun or srun (PyTorch DDP): nccl on CUDA, gloo on CPU.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK, srun its SLURM_* variables (device.Ranks); without
them training is one process.
"""
from __future__ import annotations

import datetime

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..device import Ranks
from ..errors import Img2ImgError
from ..log import logger
from ..methods import TrainingMethod


def setup(device_name: str, sync_bn: bool = False) -> tuple[Ranks, torch.device]:
    """This process's ranks and device; joins the process group when started by torchrun or srun."""
    ranks = Ranks.from_env()
    device = ranks.device(device_name)
    if not ranks.enabled:
        return ranks, device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif sync_bn:
        raise Img2ImgError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm does not run on CPU")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        join_process_group(ranks, backend, device if device.type == "cuda" else None)
    return ranks, device


def join_process_group(ranks: Ranks, backend: str, device: torch.device | None = None,
                       timeout_s: float | None = None) -> None:
    """torchrun's rendezvous is in the environment; srun's is rank 0's host and a port from the job id."""
    timeout = None if timeout_s is None else datetime.timedelta(seconds=timeout_s)
    if ranks.rendezvous is None:
        dist.init_process_group(backend, device_id=device, timeout=timeout)
        return
    host, port = ranks.rendezvous
    dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=ranks.rank,
                            world_size=ranks.world_size, device_id=device, timeout=timeout)


def gather_across_ranks(ranks: Ranks, obj, timeout_s: float = 3600) -> list:
    """Every rank's `obj`, on every rank, through a process group of its own (gloo) that is
    left at once: for work that is otherwise independent, like a sharded translation."""
    join_process_group(ranks, "gloo", timeout_s=timeout_s)
    try:
        gathered = [None] * ranks.world_size
        dist.all_gather_object(gathered, obj)
        return gathered
    finally:
        dist.destroy_process_group()


def describe(ranks: Ranks, device: torch.device) -> str:
    """What a run trains on, in words: "cpu", "cuda (NVIDIA H200), 8 ranks"."""
    words = device.type
    if device.type == "cuda":
        words += f" ({torch.cuda.get_device_name(device)})"
    return words + (f", {ranks.world_size} ranks" if ranks.enabled else "")


def info(ranks: Ranks, msg: str) -> None:
    """A message for people, from rank 0 only."""
    if ranks.is_main:
        logger.info(msg)


def warning(ranks: Ranks, msg: str) -> None:
    if ranks.is_main:
        logger.warning(msg)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather_to_main(obj, ranks: Ranks) -> list | None:
    """Every rank's `obj`, on rank 0 (None elsewhere). A collective: all ranks must call it."""
    if not ranks.enabled:
        return [obj]
    gathered = [None] * ranks.world_size if ranks.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def barrier(ranks: Ranks) -> None:
    if ranks.enabled:
        dist.barrier()


def broadcast_from_main(obj):
    """Rank 0's `obj` on every rank (a collective)."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def distribute(method: TrainingMethod, sync_bn: bool = False) -> None:
    """Wrap each of the method's trained networks in DistributedDataParallel, which the method
    then calls through `updating(name)` (the process group must exist)."""
    device = method.device
    device_ids = [device.index] if device.type == "cuda" else None
    for name, net in method.networks.items():
        if not any(p.requires_grad for p in net.parameters()):
            continue  # not trained by gradients (a moving average): nothing for DDP to reduce
        if sync_bn:
            # Converts the BatchNorm layers in place, reusing their parameters and buffers.
            nn.SyncBatchNorm.convert_sync_batchnorm(net)
        method.distributed[name] = DistributedDataParallel(net, device_ids=device_ids)


def broadcast_buffers(method: TrainingMethod) -> None:
    """Give every rank rank 0's BatchNorm statistics, as DDP does at each forward, so that after
    a step all ranks hold the same networks (and the checkpoint is every rank's)."""
    for buf in method.networks.buffers():
        dist.broadcast(buf, src=0)
