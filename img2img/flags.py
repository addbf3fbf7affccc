"""Flags the two front ends share (`img2img` and `img2img app`), generated from the library's
dataclasses so that a limit or a serving setting is declared once: `--max-*` from io.limits.Limits,
the app's work-at-once flags from service.serving.ServingSettings, and its bounds on runs from
service.run_limits.TrainingLimits, and a Slurm job's options (slurm.SlurmOptions). Adding flags to a parser
is all this does; each front end parses its own argv."""
from __future__ import annotations

import argparse
import dataclasses

from .io.limits import DEFAULT_LIMITS, Limits, flag_for
from .service.run_limits import TrainingLimits
from .service.serving import ServingSettings, serving_flag
from .slurm import SlurmOptions


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """A --max-* flag per field of Limits: what one input may cost, checked from its header."""
    group = parser.add_argument_group("limits per input, checked from the file's header before decoding")
    for f in dataclasses.fields(Limits):
        default = getattr(DEFAULT_LIMITS, f.name)
        kind = float if isinstance(default, float) else int
        group.add_argument(flag_for(f.name), type=kind, default=default, metavar="N",
                           help=f"refuse more {f.metadata['help']} (default {default:,})")


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})


def add_serving_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per field of ServingSettings: how much work the app takes on at once."""
    group = parser.add_argument_group("work at once (defaults sized for a 16 GB server: docs/app.md)")
    defaults = ServingSettings()
    for f in dataclasses.fields(ServingSettings):
        default = getattr(defaults, f.name)
        group.add_argument(serving_flag(f.name), dest=f.name, type=type(default), default=default, metavar="N",
                           help=f"{f.metadata['help']} (default {default:g})")


def serving_from(args: argparse.Namespace) -> ServingSettings:
    return ServingSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServingSettings)})


def add_training_limit_flags(group) -> None:
    """A --max-* flag per field of TrainingLimits: what one run from the page may take."""
    defaults = TrainingLimits()
    for f in dataclasses.fields(TrainingLimits):
        default = getattr(defaults, f.name)
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=int, default=default, metavar="N",
                           help=f"{f.metadata['help']} (default {default:,})")


def training_limits_from(args: argparse.Namespace) -> TrainingLimits:
    return TrainingLimits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingLimits)})


def add_slurm_flags(group) -> None:
    """sbatch's options for a run's job (slurm.SlurmOptions); the preemption signal is the run's
    own --preempt-signal."""
    group.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    group.add_argument("--gpus", type=int, default=0, metavar="N", help="GPUs per node, one task each (default 0)")
    group.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes (default 1)")
    group.add_argument("--tasks-per-node", type=int, metavar="N", help="tasks per node (default: one per GPU, or 1)")
    group.add_argument("--cpus-per-task", type=int, metavar="N", help="CPUs per task (default: the cluster's)")
    group.add_argument("--time", help="time limit, as sbatch takes it (2-00:00:00); the run saves and requeues "
                       "itself before it")
    group.add_argument("--account", help="account to charge")
    group.add_argument("--signal-seconds", type=int, default=300, metavar="S",
                       help="how long before the time limit Slurm sends the preemption signal (default 300)")
    group.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="another sbatch option, verbatim, e.g. --sbatch=--qos=high (repeatable)")


def slurm_options_from(args: argparse.Namespace, signal: str = "USR1") -> SlurmOptions:
    return SlurmOptions(partition=args.partition, nodes=args.nodes, gpus=args.gpus, tasks=args.tasks_per_node,
                        cpus_per_task=args.cpus_per_task, time=args.time, account=args.account, signal=signal,
                        signal_seconds=args.signal_seconds, extra=tuple(args.sbatch))
