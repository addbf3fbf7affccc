"""Our training step against the canonical code's, step for step, from the same weights and batches.

    python benchmarks/parity.py [--methods pix2pix cyclegan cut] [--steps 10] [--size 256] [--no-fused-adam]
                                [--reference-flags '--netG resnet_6blocks --ngf 8']
    python benchmarks/parity.py --trainer-data ../shared/datasets/maps --steps 40

For each method: the reference model is built as its own train.py builds it (its option parser at
its defaults, create_model, CUT's data_dependent_initialize, setup: through
../shared/reference/bench_reference.py's builder), ours with `--recipe paper` where the method has
recipes, at the reference's architecture. pix2pix, CycleGAN and colourisation come from the
canonical pix2pix/CycleGAN code, CUT and FastCUT from the CUT code. The reference's initial
weights are copied into ours (CUT's patch heads too, which its code makes at the first forward
pass), then both train on the same random batches. Every random draw of a step is made identical
rather than turned off:
- each step starts both sides from one torch seed, so dropout masks match where the networks draw
  them in the same order;
- the image pools' draws are taken from ours and replayed in the reference's (Python's `random`);
- CUT's patch positions and FastCUT's flip coin are taken from ours (torch) and replayed where
  the CUT code draws them (NumPy).
Printed: per step, the largest relative difference of each loss; after the last step, the
largest relative difference over every parameter, buffer and Adam moment, and how many draws
were replayed. `--trainer-data`: the same for pix2pix through our whole Trainer (data loader,
loop) on real files, the reference fed the batches ours drew.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import types
import warnings
from pathlib import Path

import torch

from img2img.methods import METHODS, new_run_config

ROOT = Path(__file__).resolve().parents[1]
# Resolved, as the reference's bench_reference.py resolves its own: with ../shared a symlink, the
# two spellings of one folder would leave the other codebase's packages on sys.path.
REFERENCE = (ROOT.parent / "shared" / "reference").resolve()

# Our method -> (the reference's model name, its dataset mode, our loss names -> the reference's).
REFERENCE_MODELS = {
    "pix2pix": ("pix2pix", "aligned", {"D_real": "D_real", "D_fake": "D_fake", "G_GAN": "G_GAN", "G_L1": "G_L1"}),
    "cyclegan": ("cycle_gan", "unaligned", {n: n for n in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B",
                                                             "idt_B")}),
    "colorization": ("colorization", "colorization",
                     {"D_real": "D_real", "D_fake": "D_fake", "G_GAN": "G_GAN", "G_L1": "G_L1"}),
    "cut": ("cut", "unaligned", {n: n for n in ("D_real", "D_fake", "G_GAN", "NCE", "NCE_Y")}),
    "fastcut": ("cut", "unaligned", {n: n for n in ("D_real", "D_fake", "G_GAN", "NCE")}),
    "unsb": ("sb", "unaligned", {n: n for n in ("D_real", "D_fake", "E", "G_GAN", "SB", "NCE", "NCE_Y")}),
}
# Which reference codebase holds each method, and the flags that select it there.
IMPLEMENTATIONS = {"pix2pix": "jz", "cyclegan": "jz", "colorization": "jz", "cut": "cut", "fastcut": "cut",
                   "unsb": "unsb"}
MODE_FLAGS = {"cut": ["--CUT_mode", "CUT"], "fastcut": ["--CUT_mode", "FastCUT"], "unsb": ["--mode", "sb"]}
# Channels of A and B (colourisation: Lab's L in, ab out).
CHANNELS = {"pix2pix": (3, 3), "cyclegan": (3, 3), "colorization": (1, 2), "cut": (3, 3), "fastcut": (3, 3),
            "unsb": (3, 3)}
# Our networks -> the reference's.
NETWORKS = {"pix2pix": {"G": "G", "D": "D"}, "colorization": {"G": "G", "D": "D"},
            "cyclegan": {"G_A": "G_A", "G_B": "G_B", "D_A": "D_A", "D_B": "D_B"},
            "cut": {"G": "G", "D": "D", "F": "F"}, "fastcut": {"G": "G", "D": "D", "F": "F"},
            "unsb": {"G": "G", "D": "D", "E": "E", "F": "F"}}
# Our image pools -> the reference's.
POOLS = {"pool_fake_a": "fake_A_pool", "pool_fake_b": "fake_B_pool"}
OPTIMIZERS = {"pix2pix": {"G": "optimizer_G", "D": "optimizer_D"}, "colorization": {"G": "optimizer_G", "D": "optimizer_D"},
              "cyclegan": {"G": "optimizer_G", "D": "optimizer_D"},
              # Ours updates G and the patch heads with one Adam; per parameter, the same as two.
              "cut": {"G": "optimizer_G", "F": "optimizer_F", "D": "optimizer_D"},
              "fastcut": {"G": "optimizer_G", "F": "optimizer_F", "D": "optimizer_D"},
              "unsb": {"G": "optimizer_G", "F": "optimizer_F", "D": "optimizer_D", "E": "optimizer_E"}}


def import_reference(impl: str):
    """bench_reference.py's builder and the `models` package of one reference codebase. The two
    codebases have packages of the same names (models, options, data, util), so those of the other
    are dropped from sys.modules first."""
    roots = {"jz": REFERENCE / "pix2pix-cyclegan", "cut": REFERENCE / "cut"}
    loaded = sys.modules.get("bench_reference")
    if loaded is None or Path(loaded.REF_ROOT) != roots[impl]:
        for name in [n for n in sys.modules if n.split(".")[0] in ("bench_reference", "models", "options", "data", "util")]:
            del sys.modules[name]
        sys.path[:] = [p for p in sys.path if Path(p) not in roots.values()]
    argv, sys.argv = sys.argv, [sys.argv[0], "--impl", impl]  # the builder reads its --impl at import
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
    return builder, importlib.import_module("models")


def import_unsb():
    """The UNSB code's option parser and `models` package (its packages share the other codebases'
    names, so theirs are dropped from sys.modules first)."""
    root = REFERENCE / "unsb"
    for name in [n for n in sys.modules if n.split(".")[0] in ("bench_reference", "models", "options", "data", "util")]:
        del sys.modules[name]
    sys.path[:] = [str(root)] + [p for p in sys.path if Path(p).parent != REFERENCE]
    return importlib.import_module("options.train_options").TrainOptions, importlib.import_module("models")


def unsb_opt(size: int, extra: list[str]):
    """UNSB's options from its own parser at its defaults, as its train.py parses them."""
    train_options, _ = import_unsb()
    argv, sys.argv = sys.argv, ["train.py", "--dataroot", "unused", "--name", "parity_unsb", "--checkpoints_dir",
                                tempfile.mkdtemp(prefix="parity_unsb_"), "--batch_size", "1", "--load_size",
                                str(size), "--crop_size", str(size), *extra]
    try:
        opt = train_options().gather_options()
    finally:
        sys.argv = argv
    opt.isTrain, opt.gpu_ids, opt.device = True, [], torch.device("cpu")
    return opt


@contextlib.contextmanager
def cuda_calls_stay_on_the_cpu():
    """UNSB's sb_model.py calls .cuda() on its time-step tensors; here they stay where they are
    (the files are not edited)."""
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda


def reference_model(method: str, size: int, seed: int, extra: list[str] = ()):
    """The reference's model at its defaults (or with `extra` flags of its own parser), built as
    its train.py builds it (CUT's and UNSB's: their patch heads made by a first forward pass,
    then setup)."""
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), cuda_calls_stay_on_the_cpu():
        if method == "unsb":
            opt = unsb_opt(size, [*MODE_FLAGS[method], *extra])
            models = import_unsb()[1]
        else:
            builder, models = import_reference(IMPLEMENTATIONS[method])
            # The builder names the aligned or unaligned dataset; a later --dataset_mode wins.
            opt = builder.build_reference_opt(REFERENCE_MODELS[method][0], 1, size, torch.device("cpu"),
                                              ["--dataset_mode", REFERENCE_MODELS[method][1],
                                               *MODE_FLAGS.get(method, []), *extra])
        model = models.create_model(opt)
        if hasattr(model, "data_dependent_initialize"):
            warnings.filterwarnings("ignore", "To copy construct", UserWarning)  # see run()
            first = torch.Generator().manual_seed(seed)
            batches = [{k: torch.rand((1, 3, size, size), generator=first) * 2 - 1 for k in ("A", "B")}
                       | {"A_paths": ["a.png"], "B_paths": ["b.png"]} for _ in range(1 + (method == "unsb"))]
            model.data_dependent_initialize(*batches)
        model.setup(opt)
    return model, opt


def _not_in_a_training_step(*args, **kwargs):
    raise NotImplementedError("scikit-image is not installed; parity.py needs no pictures")


def our_method(method: str, opt, fused_adam: bool):
    from img2img.config import SpeedConfig
    from img2img.methods import build_method
    from img2img.training.resume import apply_recipe

    overrides: dict = {}
    if "paper" in METHODS[method].recipes:
        apply_recipe(method, "paper", overrides)
    cfg = new_run_config(method)
    if method == "unsb":
        overrides["method_config"] = {
            "gan_mode": opt.gan_mode, "lambda_gan": opt.lambda_GAN, "lambda_sb": opt.lambda_SB,
            "lambda_nce": opt.lambda_NCE, "nce_idt": opt.nce_idt, "nce_layers": opt.nce_layers,
            "num_patches": opt.num_patches, "nce_temperature": opt.nce_T, "nce_dim": opt.netF_nc,
            "num_timesteps": opt.num_timesteps, "tau": opt.tau, "mapping_layers": opt.n_mlp}
    if IMPLEMENTATIONS[method] in ("cut", "unsb"):  # G and D have a norm each, and anti-aliased sampling
        if opt.normG != opt.normD or opt.no_antialias != opt.no_antialias_up:
            raise SystemExit("img2img has one --norm and one --antialias for G and D")
        overrides.setdefault("model", {}).update(norm=opt.normG, antialias=not opt.no_antialias)
        overrides.setdefault("method_config", {
            "gan_mode": opt.gan_mode, "lambda_gan": opt.lambda_GAN, "lambda_nce": opt.lambda_NCE,
            "nce_idt": opt.nce_idt, "nce_layers": opt.nce_layers, "num_patches": opt.num_patches,
            "nce_temperature": opt.nce_T, "nce_dim": opt.netF_nc, "flip_equivariance": opt.flip_equivariance})
    else:
        overrides.setdefault("model", {}).setdefault("norm", opt.norm)
    # UNSB's ResNet is named for its conditioning there (resnet_9blocks_cond); ours by its depth.
    model = dataclasses.replace(cfg.model, netG=opt.netG.removesuffix("_cond"), ngf=opt.ngf, ndf=opt.ndf,
                                dropout=not opt.no_dropout, **overrides["model"])
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
    if all(k.startswith("heads.") for k in our_keys):  # CUT's patch heads: heads.i. -> mlp_i.
        return {k: re.sub(r"^heads\.(\d+)\.", r"mlp_\1.", k) for k in our_keys}
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


@contextlib.contextmanager
def recording_patch_draws(record: list, coins: bool = True):
    """Our CUT's draws in a step, in order: the flip coin (torch.rand(())) and each layer's patch
    permutation (torch.randperm). `coins=False`: permutations only (UNSB flips nothing; its
    torch.rand draws are its noise levels, drawn on both sides)."""
    rand, randperm = torch.rand, torch.randperm

    def coin(*args, **kwargs):
        value = rand(*args, **kwargs)
        if coins:
            record.append(("coin", bool(value < 0.5)))
        return value

    def permutation(*args, **kwargs):
        value = randperm(*args, **kwargs)
        record.append(("permutation", value.cpu().numpy()))
        return value

    torch.rand, torch.randperm = coin, permutation
    try:
        yield
    finally:
        torch.rand, torch.randperm = rand, randperm


@contextlib.contextmanager
def replaying_patch_draws(record: list):
    """The reference's CUT draws its flip coin and patch permutations with NumPy: each call gets
    the draw ours made at the same point of the step."""
    import numpy as np

    random, permutation = np.random.random, np.random.permutation

    def take(kind):
        drawn_kind, value = record.pop(0)
        if drawn_kind != kind:
            raise SystemExit(f"the reference drew a {kind} where ours drew a {drawn_kind}")
        return value

    def replayed_permutation(n):
        value = take("permutation")
        if len(value) != n:
            raise SystemExit(f"the reference permutes {n} positions where ours permuted {len(value)}")
        return value

    np.random.random = lambda *args: 0.25 if take("coin") else 0.75  # < 0.5: flip
    np.random.permutation = replayed_permutation
    try:
        yield
    finally:
        np.random.random, np.random.permutation = random, permutation
    if record:
        raise SystemExit(f"the reference drew {len(record)} fewer times than ours")


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
    loss_map = REFERENCE_MODELS[method][2]
    cut_like = IMPLEMENTATIONS[method] in ("cut", "unsb")
    replayed = dict.fromkeys(("pool draws", "patch permutations", "flip coins", "flips"), 0)
    per_step, time_steps = [], []
    for step in range(steps):
        a = torch.rand((1, CHANNELS[method][0], size, size), generator=batches) * 2 - 1
        b = torch.rand((1, CHANNELS[method][1], size, size), generator=batches) * 2 - 1
        # UNSB's second data loader's batch: its A is the second source (its B goes unused).
        a2, b2 = (torch.rand((1, 3, size, size), generator=batches) * 2 - 1 for _ in range(2)) \
            if method == "unsb" else (None, None)
        patch_draws: list = []
        torch.manual_seed(10_000 + step)
        with recording_patch_draws(patch_draws, coins=method != "unsb") if cut_like else contextlib.nullcontext():
            batch = {"A": a, "B": b, **({"A2": a2} if a2 is not None else {})}
            losses = {k: v.item() for k, v in ours.training_step(batch).items()}
        for name, draws in records:  # ours queried first: hand its draws to the reference's pool
            getattr(ref, POOLS[name]).replayed.append(draws)
            replayed["pool draws"] += len(draws)
        records.clear()
        replayed["patch permutations"] += sum(kind == "permutation" for kind, _ in patch_draws)
        replayed["flip coins"] += sum(kind == "coin" for kind, _ in patch_draws)
        replayed["flips"] += sum(kind == "coin" and value for kind, value in patch_draws)
        torch.manual_seed(10_000 + step)
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), cuda_calls_stay_on_the_cpu(), \
                (replaying_patch_draws(patch_draws) if cut_like else contextlib.nullcontext()):
            # The CUT code re-wraps its key patch ids (tensors) with torch.tensor for the queries,
            # which warns.
            warnings.filterwarnings("ignore", "To copy construct", UserWarning)
            paths = {"A_paths": ["a.png"], "B_paths": ["b.png"]}
            ref.set_input({"A": a, "B": b, **paths}, *([{"A": a2, "B": b2, **paths}] if a2 is not None else []))
            ref.optimize_parameters()
        if method == "unsb":  # the bridge's time step this step trained at (all of them, over a run)
            time_steps.append(int(ref.time_idx[0]))
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
    if method == "unsb":
        paths = {"A_paths": ["a.png"], "B_paths": ["b.png"]}
        translation = translation_parity(ours, ref, ({"A": a, "B": b, **paths}, {"A": a2, "B": b2, **paths}),
                                         opt.num_timesteps)
    return {"method": method, "steps": steps, "size": size, "fused_adam": fused_adam,
            **({"translation_in_1_to_T_steps": translation} if method == "unsb" else {}),
            "losses_per_step": [max(s.values()) for s in per_step],
            "largest_loss_difference": {k: max(s[k] for s in per_step) for k in loss_map},
            "parameters_and_buffers": tensors, "worst_tensors": [(n, float(f"{d:.3g}")) for d, n in sorted(ranked)[-4:]],
            "adam_moments": moments, "replayed": {k: v for k, v in replayed.items() if v},
            **({"time_steps": time_steps} if time_steps else {})}


def translation_parity(ours, ref, inputs: tuple, num_timesteps: int) -> list[float]:
    """UNSB's translation in 1 to T steps against the reference's test-phase forward (its
    fake_1 ... fake_T) on the same image, ours fed the noise the reference drew: the largest
    difference of each."""
    drawn, randn, randn_like = [], torch.randn, torch.randn_like

    def recorded(draw):
        def record(*args, **kwargs):
            value = draw(*args, **kwargs)
            drawn.append(value.clone())
            return value
        return record

    ref.opt.phase = "test"
    torch.manual_seed(0)
    torch.randn, torch.randn_like = recorded(randn), recorded(randn_like)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(sys.stderr), cuda_calls_stay_on_the_cpu():
            ref.set_input(*inputs)
            ref.forward()
    finally:
        torch.randn, torch.randn_like = randn, randn_like
        ref.opt.phase = "train"
    # Its test loop's draws come last: X_t's noise from step 1 on, and a noise vector per step.
    test_draws = drawn[-(2 * num_timesteps - 1):]
    differences = []
    for steps in range(1, num_timesteps + 1):
        queue = [d[0] for d in test_draws]  # ours draws per image: the batch of one's image
        torch.randn = lambda *args, **kwargs: queue.pop(0)
        try:
            with torch.no_grad():
                translated = ours.networks["G"].sampling(steps, 0).eval()(inputs[0]["A"])
        finally:
            torch.randn = randn
        differences.append((translated - getattr(ref, f"fake_{steps}")).abs().max().item())
    return differences


def run_trainer(data: Path, steps: int, size: int, extra: list[str] = (), seed: int = 0) -> dict:
    """pix2pix end to end: our Trainer (its data loader, loop and checkpointing) on the files in
    `data`, and the reference model fed each batch ours trained on, from the same initial weights
    and with one torch seed per step on both sides (dropout). Returns the largest loss and
    weight differences over the run."""
    import img2img.training.trainer as trainer_module
    from img2img.config import DataConfig
    from img2img.training import Trainer

    ref, opt = reference_model("pix2pix", size, seed, extra)
    _, cfg = our_method("pix2pix", opt, fused_adam=False)
    out = Path(tempfile.mkdtemp(prefix="parity_trainer_"))
    cfg = dataclasses.replace(
        cfg, data=DataConfig(root=str(data), size=size, load_size=size * 286 // 256, num_workers=0),
        train=dataclasses.replace(cfg.train, out=str(out), max_steps=steps, seed=seed, device="cpu", fid_every=0,
                                  sample_every=0, save_every=0, log_every=steps))
    trainer = Trainer.from_config(cfg)
    maps = copy_weights(trainer.method, ref, "pix2pix")
    guarded_step = trainer_module.guarded_step
    worst_loss, taken = 0.0, []

    def both_steps(method, batch):
        nonlocal worst_loss
        torch.manual_seed(10_000 + len(taken))
        losses, bad = guarded_step(method, batch)
        torch.manual_seed(10_000 + len(taken))
        with contextlib.redirect_stdout(sys.stderr):
            ref.set_input({"A": batch["A"], "B": batch["B"], "A_paths": ["a.png"], "B_paths": ["b.png"]})
            ref.optimize_parameters()
        for name in ("D_real", "D_fake", "G_GAN"):
            worst_loss = max(worst_loss, abs(losses[name].item() - getattr(ref, "loss_" + name).item()))
        taken.append(batch["A"].shape)
        return losses, bad

    trainer_module.guarded_step = both_steps
    try:
        trainer.fit()
    finally:
        trainer_module.guarded_step = guarded_step
        shutil.rmtree(out, ignore_errors=True)
    weights = 0.0
    for name, mapping in maps.items():
        theirs = getattr(ref, "net" + name).state_dict()
        for key, tensor in trainer.method.networks[name].state_dict().items():
            if tensor.is_floating_point():
                weights = max(weights, (tensor - theirs[mapping[key]]).abs().max().item())
    return {"steps": len(taken), "largest_loss_difference": worst_loss, "largest_weight_difference": weights}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="+", default=list(REFERENCE_MODELS), choices=list(REFERENCE_MODELS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=None, help="default: 256 for the U-Nets (unet_256), 64 for the ResNets")
    parser.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-flags", default="", help="flags for the reference's option parser, e.g. "
                        "'--netG resnet_6blocks --ngf 8'; ours follows its architecture")
    parser.add_argument("--trainer-data", type=Path, help="instead: pix2pix through our Trainer on this A|B "
                        "dataset for --steps steps, against the reference fed the same batches (unet_128, 128 px)")
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        raise SystemExit(f"{REFERENCE}: the reference code is not here")
    torch.set_num_threads(args.threads)
    if args.trainer_data:
        print(json.dumps(run_trainer(args.trainer_data, args.steps, 128, ["--netG", "unet_128"])), flush=True)
        return
    for method in args.methods:
        size = args.size or (256 if method in ("pix2pix", "colorization") else 64)
        result = run(method, args.steps, size, args.fused_adam, extra=args.reference_flags.split())
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
