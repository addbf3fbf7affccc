"""Run under torchrun by test_distributed.py: `img2img train` runs, one after another in one
process group (their flag lists separated by "--and-then"), each rank saving its final
weights to OUT/rank<N>.pt for the test to compare. One torchrun for several runs: starting the
processes costs more than a tiny run."""
import sys
from pathlib import Path

import torch

from img2img.cli import build_parser, given_settings
from img2img.log import log_to_console
from img2img.training import Trainer, config_for_run
from img2img.training.distributed import teardown


def runs(argv: list[str]) -> list[list[str]]:
    found = [[]]
    for word in argv:
        if word == "--and-then":
            found.append([])
        else:
            found[-1].append(word)
    return found


if __name__ == "__main__":
    log_to_console()
    for flags in runs(sys.argv[1:]):
        args = build_parser().parse_args(["train", *flags])
        cfg = config_for_run(given_settings(args, ("model", "method_config", "data", "train", "speed")),
                             method=args.model, data=args.data, out=args.out).cfg
        trainer = Trainer.from_config(cfg)
        trainer.fit()
        torch.save(trainer.method.networks.state_dict(), Path(cfg.train.out) / f"rank{trainer.ranks.rank}.pt")
        del trainer
    teardown()
