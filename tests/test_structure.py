"""The package's seams: imports that run one way, down the layers, with no circle; light
inference imports; flags generated from the configs; methods added through the registry alone."""
import ast
import dataclasses
import functools
import subprocess
import sys
from dataclasses import dataclass

import pytest
from helpers import ROOT, TINY_PIX2PIX

from img2img import methods
from img2img.cli import build_parser, main
from img2img.config import DataConfig, ModelConfig, SpeedConfig, TrainConfig, flag_name, setting
from img2img.losses import GAN_MODES
from img2img.methods import METHODS
from img2img.methods.pix2pix import Pix2PixConfig
from img2img.models import NORM_LAYERS

PACKAGE = ROOT / "img2img"
# The rooms of the package, bottom first: a module may import from its own layer's rooms (not in
# a circle) and from the layers below, never from above.
LAYERS = [
    {"errors", "registry", "files", "log", "slurm", "device", "download", "cancellation"},
    {"config"},
    {"io", "models"},
    {"losses"},
    {"methods"},
    {"persist", "data", "metrics"},
    {"translate"},
    {"training"},
    {"service", "flags"},
    {"cli", "app", "inference", "__main__", "__init__"},
]
LAYER_OF = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """{module: the img2img modules it imports}, function-level imports included."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                candidates = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            targets |= {next(c for c in candidates if c in modules)} if any(c in modules for c in candidates) else set()
        graph[name] = targets - {name}
    return graph


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_imports_run_down_the_layers():
    upward = [f"{m} imports {t}" for m, targets in import_graph().items() for t in targets
              if LAYER_OF[room(t)] > LAYER_OF[room(m)]]
    assert not upward


def test_the_app_is_a_thin_package_that_never_imports_the_cli():
    app_modules = [m for m in import_graph() if room(m) == "app"]
    assert "img2img.app.page" in app_modules
    assert not [(m, t) for m in app_modules for t in import_graph()[m] if room(t) == "cli"]
    too_long = {p.name: n for p in (PACKAGE / "app").glob("*.py") if (n := len(p.read_text().splitlines())) > 250}
    assert not too_long
    assert len((ROOT / "app.py").read_text().splitlines()) <= 10  # the clone's entry point only


# The package root holds the rooms' floor and the front ends; every other module lives in a room.
ROOT_FILES = {
    "__init__": "the package map", "__main__": "python -m img2img", "cli": "the command line",
    "flags": "flags both front ends share", "inference": "the Translator's old import path, kept for users",
    "config": "the typed configs (a room of one file)", "losses": "the adversarial losses (a room of one file)",
    "errors": "the floor: one-line errors", "registry": "the floor: lookups by name",
    "files": "the floor: atomic writes", "log": "the floor: the logger",
    "device": "device, seeds and ranks: training's and translation's", "download": "resumable downloads: "
    "published models' and datasets'", "cancellation": "stopping long work: translation's and the app's",
    "slurm": "a task's place in a Slurm step, and the Slurm commands: training's, translation's and the app's",
}


def test_the_package_root_holds_only_files_with_a_reason_to_be_there():
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ROOT_FILES)


def test_no_class_or_function_is_over_250_lines_and_at_most_two_over_150():
    sizes = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                sizes[f"{module_name(path)}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert not {name: n for name, n in sizes.items() if n > 250}
    assert len([n for n in sizes.values() if n > 150]) <= 2, sorted(sizes.items(), key=lambda kv: -kv[1])[:4]


def test_every_room_has_a_layer():
    assert {room(m) for m in import_graph()} <= set(LAYER_OF)


def test_the_import_graph_has_no_circle():
    graph, state, circles = import_graph(), {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles


@pytest.mark.parametrize("lower,higher", [("config", "methods"), ("config", "models"), ("config", "io"),
                                          ("translate", "training"), ("data", "methods")])
def test_a_room_imports_nothing_from_a_room_above_it(lower, higher):
    assert not [(m, t) for m, targets in import_graph().items() for t in targets
                if room(m) == lower and room(t) == higher]


def test_importing_inference_loads_no_trainer_data_pipeline_or_metrics():
    code = ("import sys, img2img.translate.translator; heavy = ('img2img.training', 'albumentations', 'cv2', 'pytorch_fid', "
            "'scipy', 'img2img.metrics'); print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["img2img", "img2img.errors", "img2img.config"])
def test_importing_the_errors_or_the_configs_loads_no_torch_and_no_method(module):
    code = (f"import sys, {module}; print([m for m in ('torch', 'numpy', 'img2img.methods', 'img2img.models') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_configs_offer_exactly_the_architectures_models_build():
    from img2img import config
    from img2img.models import DISCRIMINATORS, GENERATOR_BUILDERS, NORM_LAYERS
    from img2img.models.init import INIT_TYPES

    assert config.GENERATOR_NAMES == tuple(GENERATOR_BUILDERS)
    assert config.DISCRIMINATOR_NAMES == tuple(DISCRIMINATORS)
    assert config.NORM_NAMES == tuple(NORM_LAYERS)
    assert config.INIT_TYPES is INIT_TYPES


def test_an_unknown_name_is_one_line_that_lists_the_choices():
    from img2img.errors import Img2ImgError

    with pytest.raises(Img2ImgError, match=r"^unknown method 'pix3pix'; choose one of pix2pix, cyclegan, cut, "):
        METHODS["pix3pix"]


def train_option_strings() -> set[str]:
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    return {s for action in train._actions for s in action.option_strings}


def test_every_config_setting_has_a_train_flag():
    options = train_option_strings()
    for cls in (ModelConfig, DataConfig, TrainConfig, SpeedConfig, *(m.config for m in METHODS.values())):
        for f in dataclasses.fields(cls):
            if f.metadata.get("cli", True):
                assert flag_name(f.name) in options, f"{cls.__name__}.{f.name} has no flag"


def test_flag_choices_come_from_the_registries(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "{" + ",".join(METHODS) + "}" in help_text
    assert "{" + ",".join(NORM_LAYERS) + "}" in help_text
    assert "{" + ",".join(GAN_MODES) + "}" in help_text


@dataclass
class SharpPix2PixConfig(Pix2PixConfig):
    """A variant of pix2pix: its settings and defaults, and one of its own."""

    gan_mode: str = setting("hinge", "adversarial loss", choices=GAN_MODES)
    lambda_l1: float = setting(10.0, "weight of the L1 term")
    lambda_sharp: float = setting(0.0, "a setting only this method has")


SHARP = dataclasses.replace(METHODS["pix2pix"], config=SharpPix2PixConfig)


def test_a_method_added_to_the_registry_trains_from_the_cli(paired_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "sharp", SHARP)
    assert "--lambda-sharp" in train_option_strings()
    out = tmp_path / "run"
    assert main(["train", "--model", "sharp", "--data", str(paired_dir), "--out", str(out), "--max-steps", "1",
                 "--lambda-sharp", "2", *TINY_PIX2PIX]) == 0
    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint

    cfg = checkpoint_config(load_checkpoint(out / "checkpoints" / "latest.pt"))
    assert cfg.method == "sharp" and cfg.method_config == SharpPix2PixConfig(lambda_sharp=2.0)
