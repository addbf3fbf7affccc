"""Our training step against the canonical code's, step for step, from the same weights and batches.

    python benchmarks/parity.py [--methods pix2pix cyclegan] [--steps 10] [--size 256] [--no-fused-adam]

For each method: the reference model is built as its own train.py builds it (its option parser at
its defaults, create_model, setup: ../shared/reference/bench_reference.py's builder), ours with
`--recipe paper` where the method has recipes, at the reference's architecture. The reference's
initial weights are copied into ours, then both train on the same random batches. Every random
draw of a step is made identical rather than turned off: each step starts both sides from one
torch seed, so that dropout masks match where the networks draw them in the same order, and the
image pool's draws are taken from our pool and replayed in the reference's (its own are Python's
`random`). Printed: per step, the largest relative difference of each loss; after the last step,
the largest relative difference over every parameter, buffer and Adam moment.

Status (issue 52): pix2pix, CycleGAN and colourisation. CUT and FastCUT, the data pipelines, the
slow tests and the seed study are not done yet.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"

# Our method -> (the reference's model name, its dataset mode, our loss names -> the reference's).
METHODS = {
    "pix2pix": ("pix2pix", "aligned", {"D_real": "D_real", "D_fake": "D_fake", "G_GAN": "G_GAN", "G_L1": "G_L1"}),
    "cyclegan": ("cycle_gan", "unaligned", {n: n for n in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B",
                                                             "idt_B")}),
    "colorization": ("colorization", "colorization",
                     {"D_real": "D_real", "D_fake": "D_fake", "G_GAN": "G_GAN", "G_L1": "G_L1"}),
}
# Channels of A and B (colourisation: Lab's L in, ab out).
CHANNELS = {"pix2pix": (3, 3), "cyclegan": (3, 3), "colorization": (1, 2)}
# Our networks -> the reference's.
NETWORKS = {"pix2pix": {"G": "G", "D": "D"}, "colorization": {"G": "G", "D": "D"},
            "cyclegan": {"G_A": "G_A", "G_B": "G_B", "D_A": "D_A", "D_B": "D_B"}}
# Our image pools -> the reference's.
POOLS = {"pool_fake_a": "fake_A_pool", "pool_fake_b": "fake_B_pool"}
OPTIMIZERS = {"pix2pix": {"G": "optimizer_G", "D": "optimizer_D"}, "colorization": {"G": "optimizer_G", "D": "optimizer_D"},
              "cyclegan": {"G": "optimizer_G", "D": "optimizer_D"}}


def reference_model(method: str, size: int, seed: int, extra: list[str] = ()):
    """The reference's model at its defaults (or with `extra` flags of its own parser), built as
    its train.py builds it."""
    argv, sys.argv = sys.argv, [sys.argv[0], "--impl", "jz"]  # the builder reads its --impl at import
    if str(REFERENCE) not in sys.path:
        sys.path.insert(0, str(REFERENCE))
    if "skimage" not in sys.modules and importlib.util.find_spec("skimage") is None:
        # The reference's colourisation imports scikit-image for its pictures (lab2rgb) only,
        # never in a training step: a stand-in lets it load without the package.
        skimage, color = types.ModuleType("skimage"), types.ModuleType("skimage.color")
        color.lab2rgb = color.rgb2lab = _not_in_a_training_step
        skimage.color = color
        sys.modules.update({"skimage": skimage, "skimage.color": color})
    try:
        builder = importlib.import_module("bench_reference")
    finally:
        sys.argv = argv
    models = importlib.import_module("models")
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(sys.stderr):
        # The builder names the aligned or unaligned dataset; a later --dataset_mode wins.
        opt = builder.build_reference_opt(METHODS[method][0], 1, size, torch.device("cpu"),
                                          ["--dataset_mode", METHODS[method][1], *extra])
        model = models.create_model(opt)
        model.setup(opt)
    return model, opt


def _not_in_a_training_step(*args, **kwargs):
    raise NotImplementedError("scikit-image is not installed; parity.py needs no pictures")


def our_method(method: str, opt, fused_adam: bool):
    from img2img.config import RunConfig, SpeedConfig
    from img2img.methods import build_method, method_class
    from img2img.training.resume import apply_recipe

    overrides: dict = {}
    if "paper" in method_class(method).recipes:
        apply_recipe(method, "paper", overrides)
    cfg = RunConfig.for_method(method)
    model = dataclasses.replace(cfg.model, netG=opt.netG, ngf=opt.ngf, ndf=opt.ndf, norm=opt.norm,
                                dropout=not opt.no_dropout, **overrides.get("model", {}))
    method_config = dataclasses.replace(cfg.method_config, **overrides.get("method_config", {}))
    if hasattr(method_config, "pool_size"):
        method_config = dataclasses.replace(method_config, pool_size=opt.pool_size)
    train = dataclasses.replace(cfg.train, lr=opt.lr, beta1=opt.beta1,
                                speed=SpeedConfig(fused_adam=fused_adam, amp=False, channels_last=False))
    cfg = dataclasses.replace(cfg, model=model, method_config=method_config, train=train)
    return build_method(cfg, "cpu", train.speed), cfg


def name_map(ours: torch.nn.Module, theirs: torch.nn.Module) -> dict[str, str]:
    """Our state_dict keys -> the reference's: the same names where they exist (ResNet, PatchGAN),
    else the U-Net's level-by-level map."""
    from img2img.translate.pretrained import unet_name_map

    our_keys, their_keys = list(ours.state_dict()), set(theirs.state_dict())
    if set(our_keys) <= their_keys:
        return {k: k for k in our_keys}
    modules = unet_name_map(ours.num_downs)
    out = {}
    for key in our_keys:
        module, _, param = key.rpartition(".")
        out[key] = f"{modules.get(module, module)}.{param}"
    missing = [v for v in out.values() if v not in their_keys]
    if missing:
        raise SystemExit(f"no reference tensor for {missing[:3]}")
    return out


def copy_weights(ours, ref, method: str) -> dict[str, dict[str, str]]:
    maps = {}
    for our_name, their_name in NETWORKS[method].items():
        net, theirs = ours.networks[our_name], getattr(ref, "net" + their_name)
        maps[our_name] = name_map(net, theirs)
        their_state = theirs.state_dict()
        with torch.no_grad():
            for key, tensor in net.state_dict().items():
                tensor.copy_(their_state[maps[our_name][key]])
    return maps


def replay_pool_draws(ours, ref) -> None:
    """The reference's image pools draw with Python's `random`; ours with torch. Each reference
    query replays the draws our pool made for the same images in the same step."""
    import random

    for name in POOLS.values():
        pool = getattr(ref, name, None)
        if pool is None:
            continue
        pool.replayed = []
        original = random.uniform, random.randint

        def query(images, pool=pool):
            # Our pool's draws for this query: (swap coin, slot) per image, recorded in step order.
            draws = pool.replayed.pop(0)
            coins = iter(c for c, _ in draws)
            slots = iter(s for _, s in draws)
            random.uniform = lambda a, b: 0.75 if next(coins) else 0.25  # > 0.5: swap
            random.randint = lambda a, b: next(slots)
            try:
                return type(pool).query(pool, images)
            finally:
                random.uniform, random.randint = original

        pool.query = query


def record_our_pool_draws(ours) -> list:
    """Wrap our pools so that each query's (swap coin, slot) draws are recorded."""
    records = []
    for name in POOLS:
        pool = getattr(ours, name, None)
        if pool is None:
            continue
        original_rand, original_randint = torch.rand, torch.randint

        def query(images, pool=pool, name=name):
            drawn = {}

            def rand(*args, **kwargs):
                drawn["coin"] = original_rand(*args, **kwargs)
                return drawn["coin"]

            def randint(*args, **kwargs):
                drawn["slot"] = original_randint(*args, **kwargs)
                return drawn["slot"]

            torch.rand, torch.randint = rand, randint
            try:
                out = type(pool).query(pool, images)
            finally:
                torch.rand, torch.randint = original_rand, original_randint
            records.append((name, [(bool(c < 0.5), int(s)) for c, s in zip(drawn["coin"], drawn["slot"])]))
            return out

        pool.query = query
    return records


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale else (a - b).abs().max().item()


def run(method: str, steps: int, size: int, fused_adam: bool, seed: int = 0, extra: list[str] = ()) -> dict:
    """`extra`: flags for the reference's option parser (e.g. a smaller --netG); ours follows its
    architecture."""
    ref, opt = reference_model(method, size, seed, extra)
    ours, cfg = our_method(method, opt, fused_adam)
    maps = copy_weights(ours, ref, method)
    ours.train()
    records = record_our_pool_draws(ours)
    replay_pool_draws(ours, ref)
    batches = torch.Generator().manual_seed(seed + 1)
    loss_map = METHODS[method][2]
    per_step = []
    for step in range(steps):
        a = torch.rand((1, CHANNELS[method][0], size, size), generator=batches) * 2 - 1
        b = torch.rand((1, CHANNELS[method][1], size, size), generator=batches) * 2 - 1
        torch.manual_seed(10_000 + step)
        losses = {k: v.item() for k, v in ours.training_step({"A": a, "B": b}).items()}
        for name, draws in records:  # ours queried first: hand its draws to the reference's pool
            getattr(ref, POOLS[name]).replayed.append(draws)
        records.clear()
        torch.manual_seed(10_000 + step)
        with contextlib.redirect_stdout(sys.stderr):
            ref.set_input({"A": a, "B": b, "A_paths": ["a.png"], "B_paths": ["b.png"]})
            ref.optimize_parameters()
        # The reference logs its weighted L1; ours the plain one.
        scale = {"G_L1": cfg.method_config.lambda_l1} if method in ("pix2pix", "colorization") else {}
        losses = {k: v * scale.get(k, 1.0) for k, v in losses.items()}
        theirs = {k: float(getattr(ref, "loss_" + v).detach()) for k, v in loss_map.items()}
        per_step.append({k: abs(losses[k] - theirs[k]) / max(abs(theirs[k]), 1e-12) for k in loss_map})
    tensors, moments = 0.0, 0.0
    ranked = []
    for our_name, mapping in maps.items():
        net, theirs_net = ours.networks[our_name], getattr(ref, "net" + NETWORKS[method][our_name])
        their_state = theirs_net.state_dict()
        for key, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                d = relative(tensor, their_state[mapping[key]])
                tensors = max(tensors, d)
                ranked.append((d, f"{our_name}.{key}"))
        their_params = dict(theirs_net.named_parameters())
        for key, param in net.named_parameters():
            our_state = next(o.state.get(param) for o in ours.optimizers.values() if param in o.state)
            their_param = their_params[mapping[key]]
            their_opt = next(getattr(ref, n) for n in OPTIMIZERS[method].values()
                             if their_param in getattr(ref, n).state)
            for moment in ("exp_avg", "exp_avg_sq"):
                moments = max(moments, relative(our_state[moment], their_opt.state[their_param][moment]))
    return {"method": method, "steps": steps, "size": size, "fused_adam": fused_adam,
            "losses_per_step": [max(s.values()) for s in per_step],
            "largest_loss_difference": {k: max(s[k] for s in per_step) for k in loss_map},
            "parameters_and_buffers": tensors, "worst_tensors": [(n, float(f"{d:.3g}")) for d, n in sorted(ranked)[-4:]],
            "adam_moments": moments}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=None, help="default: 256 for the U-Nets (unet_256), 64 otherwise")
    parser.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        raise SystemExit(f"{REFERENCE}: the reference code is not here")
    torch.set_num_threads(args.threads)
    for method in args.methods:
        size = args.size or (64 if method == "cyclegan" else 256)
        result = run(method, args.steps, size, args.fused_adam)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
