"""Training: the one loop (Trainer), its run folder, resumption and torchrun helpers."""
from .resume import config_for_run
from .trainer import Trainer

__all__ = ["Trainer", "config_for_run"]
