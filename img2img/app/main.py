"""`img2img app` (and `python app.py` in a clone): the web app's command line.

    img2img app [--checkpoints DIR|hf://user/name ...] [--examples DIR] [--host 127.0.0.1]
                [--port 7860] [--share] [--auth USER:PASSWORD ... | --auth-file FILE | --allow-anonymous]
                [work at once, limits: see --help] [--allow-training --data-root DIR --runs DIR --max-runs N]
                [--runner slurm --partition P --gpus N --time T --account A]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

from ..errors import Img2ImgError  # noqa: E402
from ..flags import (  # noqa: E402
    add_limit_flags,
    add_serving_flags,
    add_slurm_flags,
    add_training_limit_flags,
    limits_from,
    serving_from,
    slurm_options_from,
    training_limits_from,
)
from ..log import log_to_console  # noqa: E402
from ..service.datasets import UploadLimits  # noqa: E402
from ..service.serving import downloads_allowed, exposure_problem, parse_auth, split_model_sources  # noqa: E402
from ..service.training import TrainingService  # noqa: E402
from ..translate.precision import PRECISIONS  # noqa: E402


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="img2img web app")
    parser.add_argument("--checkpoints", nargs="+", default=["checkpoints"], metavar="DIR_OR_HF",
                        help="folder searched for *.pt models (default checkpoints), and/or Hugging Face Hub models "
                        "as hf://user/name[@revision]")
    parser.add_argument("--examples", help="folder of example input images (default: from the models' cards)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio link")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto (default): on the CPU, int8 for a model whose int8 copy measured faster within the "
                        "quality gate on its own validation split (docs/speed.md), else fp32; or fp32, bf16, int8")
    parser.add_argument("--published-url", help="fetch published models from this URL template with {name} "
                        "(default: the authors' server)")
    who = parser.add_argument_group("who may use it (--share or a --host other than loopback needs one of these)")
    who.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD", help="a login (repeatable)")
    who.add_argument("--auth-file", help="logins, one USER:PASSWORD per line")
    who.add_argument("--allow-anonymous", action="store_true", help="serve beyond this machine with no login")
    add_serving_flags(parser)
    train = parser.add_argument_group("training from the page (off unless --allow-training)")
    train.add_argument("--allow-training", action="store_true",
                       help="add the Train tab and its endpoints; on a shared server, with --auth (docs/app.md)")
    train.add_argument("--data-root", default="datasets", metavar="DIR",
                       help="training data is chosen in this folder, and uploaded zips land in DIR/uploads "
                       "(default datasets)")
    train.add_argument("--runs", default="runs", metavar="DIR", help="run folders (default runs)")
    train.add_argument("--max-runs", type=int, default=1, metavar="N",
                       help="runs that train at once; later ones wait in a queue (default 1)")
    train.add_argument("--admin", action="append", default=[], metavar="USER",
                       help="a login that may stop, resume, delete and use anyone's runs (repeatable); others only "
                       "their own")
    add_training_limit_flags(train)
    cluster = parser.add_argument_group("the Train tab on a Slurm cluster's login node (docs/cluster.md)")
    cluster.add_argument("--runner", default="local", choices=("local", "slurm"),
                         help="local (default): runs are processes on this machine, --max-runs at once; slurm: each "
                         "run is a Slurm job with the options below, queued by Slurm")
    add_slurm_flags(cluster)
    add_limit_flags(parser)
    return parser


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        accounts = parse_auth(args.auth, args.auth_file)
        problem = exposure_problem(args.host, args.share, bool(accounts), args.allow_anonymous)
        if problem:
            raise Img2ImgError(problem)
        folder, hub_models = split_model_sources(args.checkpoints)
    except Img2ImgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log_to_console()  # the server's log: one line per refusal, login throttled, run started
    serving = serving_from(args)
    training = None
    if args.allow_training:
        training = TrainingService(args.data_root, args.runs, max(1, args.max_runs), limits_from(args),
                                   UploadLimits(max_upload_mb=serving.max_upload_mb),
                                   run_limits=training_limits_from(args), admins=tuple(args.admin), models_dir=folder,
                                   slurm=slurm_options_from(args) if args.runner == "slurm" else None)
        training.runs.start_scheduler()
    # Gradio's import takes seconds: not for --help or a refusal.
    from .glue import launch_options
    from .page import build_app

    app = build_app(folder, args.examples, args.device, precision=args.precision, limits=limits_from(args),
                    published_url=args.published_url, serving=serving, hub_models=hub_models,
                    allow_downloads=downloads_allowed(bool(accounts), args.host, args.share), training=training)
    threading.Thread(target=app.preload, daemon=True).start()
    # SIGTERM (systemd, docker, kill) ends the app as Ctrl-C does: Gradio empties its cache and
    # the work folder is removed on the way out.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        app.launch(server_name=args.host, server_port=args.port, share=args.share,
                   max_file_size=f"{serving.max_upload_mb}mb", **launch_options(accounts))
    finally:
        app.close()
        app.workdir.cleanup()
        if training is not None:
            training.runs.close()  # the runs themselves go on; a new server finds them
    return 0
