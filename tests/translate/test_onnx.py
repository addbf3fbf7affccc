"""ONNX export and onnxruntime inference: same outputs as PyTorch, any batch and size."""

import numpy as np
import onnx
import pytest
import torch
from helpers import SMALL_MODELS, make_checkpoint, random_image

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.methods import run_config_from_dict
from img2img.translate.onnx_graph import META_CONFIG, OPSET
from img2img.translate.translator import Translator


@pytest.mark.slow
@pytest.mark.parametrize("method", list(SMALL_MODELS))
def test_onnx_export_matches_pytorch_at_two_sizes_and_batches(method, tmp_path, capsys):
    checkpoint = make_checkpoint(method, tmp_path / f"{method}.pt")
    assert main(["export", "--format", "onnx", str(checkpoint), str(tmp_path / "g.onnx")]) == 0
    torch_translator = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch")
    directions = torch_translator.directions
    files = [tmp_path / "g.onnx"] if len(directions) == 1 else [tmp_path / f"g.{d}.onnx" for d in directions]
    assert all(f.is_file() for f in files)
    for direction, path in zip(directions, files):
        onnx_translator = Translator.from_checkpoint(path, device="cpu")
        assert onnx_translator.engine == "onnxruntime" and onnx_translator.directions == [direction]
        for shape in [(1, 3, 64, 64), (3, 3, 96, 160)]:
            x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
            ours = onnx_translator.translate_tensor(x, direction)
            reference = torch_translator.translate_tensor(x, direction)
            assert ours.shape == reference.shape
            assert (ours - reference).abs().max().item() <= 1e-3


@pytest.mark.slow
def test_onnx_file_carries_the_config_and_opset(tmp_path):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "p.pt")
    main(["export", "--format", "onnx", str(checkpoint), str(tmp_path / "p.onnx")])
    model = onnx.load(str(tmp_path / "p.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert run_config_from_dict(__import__("json").loads(meta[META_CONFIG])).model.netG == "unet_32"
    assert meta["img2img.direction"] == "AtoB" and meta["img2img.size_multiple"] == "32"
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET
    ops = {n.op_type for n in model.graph.node}
    assert "InstanceNormalization" in ops or "ReduceMean" in ops  # per-image BatchNorm, not running statistics
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == 3 and isinstance(dims[2], str) and isinstance(dims[3], str)


@pytest.mark.slow
def test_running_statistics_export_matches_pytorch_running_statistics(tmp_path):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "p.pt")
    main(["export", "--format", "onnx", "--batch-norm", "running", str(checkpoint), str(tmp_path / "p.onnx")])
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    reference = Translator.from_checkpoint(checkpoint, device="cpu", batch_norm="running", engine="torch")
    ours = Translator.from_checkpoint(tmp_path / "p.onnx", device="cpu")
    assert (ours.translate_tensor(x) - reference.translate_tensor(x)).abs().max().item() <= 1e-3


@pytest.mark.slow
def test_translate_cli_runs_an_onnx_file_on_images_of_any_size(tmp_path, capsys):
    checkpoint = make_checkpoint("cyclegan", tmp_path / "c.pt")
    main(["export", "--format", "onnx", "--direction", "BtoA", str(checkpoint), str(tmp_path / "c.onnx")])
    random_image(np.random.default_rng(0), 70, 45).save(tmp_path / "in.png")
    assert main(["translate", "--checkpoint", str(tmp_path / "c.onnx"), "--direction", "BtoA",
                 str(tmp_path / "in.png"), str(tmp_path / "out"), "--num-workers", "0"]) == 0
    assert "onnxruntime" in capsys.readouterr().out
    from PIL import Image

    assert Image.open(tmp_path / "out" / "in.png").size == (70, 45)


@pytest.mark.slow
def test_resnet_generators_stay_on_pytorch_unless_asked(tmp_path):
    checkpoint = make_checkpoint("cyclegan", tmp_path / "c.pt")
    assert Translator.from_checkpoint(checkpoint, device="cpu").engine == "torch"
    assert Translator.from_checkpoint(checkpoint, device="cpu", engine="onnxruntime").engine == "onnxruntime"


@pytest.mark.slow
def test_cpu_translators_of_unets_default_to_onnxruntime_and_export_once(tmp_path, monkeypatch):
    monkeypatch.setenv("IMG2IMG_CACHE", str(tmp_path / "cache"))
    checkpoint = make_checkpoint("pix2pix", tmp_path / "p.pt")
    first = Translator.from_checkpoint(checkpoint, device="cpu")
    assert first.engine == "onnxruntime"
    exported = list((tmp_path / "cache").rglob("*.onnx"))
    stamp = exported[0].stat().st_mtime_ns
    second = Translator.from_checkpoint(checkpoint, device="cpu")
    assert list((tmp_path / "cache").rglob("*.onnx")) == exported and exported[0].stat().st_mtime_ns == stamp
    image = random_image(np.random.default_rng(0), 64, 64)
    torch_out = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch").translate(image)
    assert np.abs(np.asarray(second.translate(image), int) - np.asarray(torch_out, int)).max() <= 1
    # A cached export that was changed is not trusted: it is exported again.
    exported[0].write_bytes(exported[0].read_bytes()[:-100] + b"\0" * 100)
    third = Translator.from_checkpoint(checkpoint, device="cpu")
    assert np.abs(np.asarray(third.translate(image), int) - np.asarray(torch_out, int)).max() <= 1
    assert exported[0].stat().st_mtime_ns != stamp


def test_not_an_onnx_model_is_a_one_line_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(Img2ImgError, match="bad.onnx: not a readable ONNX model"):
        Translator.from_checkpoint(tmp_path / "bad.onnx", device="cpu")


def test_export_of_a_direction_the_model_lacks_is_a_one_line_error(tmp_path, capsys):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "p.pt")
    assert main(["export", "--format", "onnx", "--direction", "BtoA", str(checkpoint), str(tmp_path / "p.onnx")]) != 0
    assert capsys.readouterr().err.strip() == f"error: {checkpoint}: holds AtoB only, not BtoA"
    assert not (tmp_path / "p.onnx").exists()


def test_a_swapped_onnx_cache_with_a_rewritten_record_is_caught_and_exported_again(tmp_path, caplog):
    """Whoever can write the cache can rewrite the sha256 beside a graph; the graph is checked
    against the checkpoint's own network instead."""
    from img2img.files import atomic_write_text
    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
    from img2img.translate.onnx_graph import cached_export, export_generator, file_sha256

    checkpoint = make_checkpoint("pix2pix", tmp_path / "unet.pt", seed=1)
    other = load_generators(load_checkpoint(make_checkpoint("pix2pix", tmp_path / "other.pt", seed=2)))["AtoB"]
    state = load_checkpoint(checkpoint)
    cfg, generator = checkpoint_config(state), load_generators(state)["AtoB"]
    path = cached_export(checkpoint, generator, cfg, "AtoB", "image")
    export_generator(other, cfg, "AtoB", path, "image")  # another network's graph in its place
    atomic_write_text(path.with_name(path.name + ".sha256"), file_sha256(path) + "\n")
    image = np.asarray(random_image(np.random.default_rng(0), 32, 32))
    with caplog.at_level("WARNING", logger="img2img"):
        served = Translator.from_checkpoint(checkpoint, device="cpu", engine="onnxruntime", precision="fp32")
    assert "disagrees with its checkpoint's network; exporting it again" in caplog.text
    reference = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch", precision="fp32")
    assert np.abs(served.translate_pixels(image).astype(int) - reference.translate_pixels(image).astype(int)).max() <= 1
