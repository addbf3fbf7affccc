from .checkpoint import checkpoint_config, load_checkpoint, load_newest_valid, save_checkpoint
from .device import resolve_device, seed_everything
from .trainer import Trainer

__all__ = [
    "Trainer",
    "checkpoint_config",
    "load_checkpoint",
    "load_newest_valid",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
