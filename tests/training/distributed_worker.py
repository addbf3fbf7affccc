"""Run under torchrun by test_distributed.py: `img2img train` with the given flags, then
each rank saves its own final weights to OUT/rank<N>.pt for the test to compare."""
import sys
from pathlib import Path

import torch

from img2img.cli import build_parser, given_settings
from img2img.log import log_to_console
from img2img.training import Trainer, config_for_run
from img2img.training.distributed import teardown

if __name__ == "__main__":
    log_to_console()
    args = build_parser().parse_args(["train", *sys.argv[1:]])
    cfg = config_for_run(given_settings(args, ("model", "method_config", "data", "train", "speed")),
                         method=args.model, data=args.data, out=args.out).cfg
    trainer = Trainer.from_config(cfg)
    trainer.fit()
    torch.save(trainer.method.networks.state_dict(), Path(cfg.train.out) / f"rank{trainer.ranks.rank}.pt")
    teardown()
