"""Run under torchrun by test_distributed.py: `img2img train` with the given flags, then
each rank saves its own final weights to OUT/rank<N>.pt for the test to compare."""
import sys
from pathlib import Path

import torch

from img2img.cli import build_parser, train_config
from img2img.training import Trainer
from img2img.training.distributed import teardown

if __name__ == "__main__":
    cfg, _ = train_config(build_parser().parse_args(["train", *sys.argv[1:]]))
    trainer = Trainer(cfg)
    trainer.fit()
    torch.save(trainer.method.networks.state_dict(), Path(cfg.train.out) / f"rank{trainer.ranks.rank}.pt")
    teardown()
