from .checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from .device import resolve_device, seed_everything
from .trainer import Trainer, find_resume_checkpoint

__all__ = [
    "Trainer",
    "checkpoint_config",
    "find_resume_checkpoint",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
