"""CPU translation at reduced precision: int8 (onnxruntime static quantisation) and bf16, the
int8 cache, `auto`'s quality gate, and the int8 export."""
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import make_checkpoint, make_paired, random_image

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.methods import METHODS, new_run_config
from img2img.translate import precision
from img2img.translate.onnx_graph import META_CONFIG, META_DIRECTION, file_sha256
from img2img.translate.precision import META_CALIBRATION, META_CHECKPOINT, META_PRECISION, QualityGate
from img2img.translate.translator import Translator

# A U-Net with a 32 px multiple and a ResNet, both small; calibrated at 32 px.
UNET = dict(netG="unet_32", ngf=8)
SMALL_DATA = dict(size=32, load_size=32)


@pytest.fixture
def calibration_dir(tmp_path):
    folder = tmp_path / "calibration"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        random_image(rng, 32, 32).save(folder / f"{i}.png")
    return folder


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """img2img's cache, where int8 models live, of this test's own."""
    monkeypatch.setenv("IMG2IMG_CACHE", str(tmp_path / "img2img_cache"))


def int8_files(folder):
    """The int8 models cached for the checkpoints in `folder`, found by their content."""
    shas = {file_sha256(p)[:16] for p in folder.glob("*.pt")}
    cache = Path(os.environ["IMG2IMG_CACHE"]) / "int8"
    return sorted(f for f in cache.glob("*.int8.onnx") if f.name.split(".")[1] in shas)


def test_each_precision_translates_close_to_fp32(tmp_path, calibration_dir):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    image = random_image(np.random.default_rng(1), 64, 32)
    outputs = {}
    for wanted in ("fp32", "bf16", "int8"):
        translator = Translator.from_checkpoint(checkpoint, device="cpu", precision=wanted, calibration=calibration_dir)
        assert translator.precision == {"AtoB": wanted}
        outputs[wanted] = np.asarray(translator.translate(image), dtype=np.float64)
        assert outputs[wanted].shape == (32, 64, 3)
    assert "int8 (onnxruntime)" == Translator.from_checkpoint(
        checkpoint, device="cpu", precision="int8", calibration=calibration_dir).describe_precision("AtoB")
    for reduced in ("bf16", "int8"):
        difference = np.abs(outputs[reduced] - outputs["fp32"])
        assert 0 < difference.mean() < 12, reduced  # reduced, yet the same translation


def test_int8_is_quantised_once_then_reused_from_img2imgs_cache(tmp_path, calibration_dir, monkeypatch):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=calibration_dir)
    (cached,) = int8_files(tmp_path)
    assert file_sha256(checkpoint)[:16] in cached.name
    meta = precision.onnx_metadata(cached)
    assert meta[META_CHECKPOINT] == file_sha256(checkpoint) and meta[META_PRECISION] == "int8"
    assert str(calibration_dir.resolve()) in meta[META_CALIBRATION]

    def no_quantising(*args, **kwargs):
        raise AssertionError("quantised again")

    monkeypatch.setattr(precision, "quantize_int8", no_quantising)
    translator = Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=calibration_dir)
    assert translator.onnx["AtoB"].path == cached


def test_a_foreign_or_damaged_int8_cache_is_refused_and_rebuilt(tmp_path, calibration_dir, caplog):
    ours = make_checkpoint("pix2pix", tmp_path / "ours" / "model.pt", model=UNET, seed=0, **SMALL_DATA)
    theirs = make_checkpoint("pix2pix", tmp_path / "theirs" / "model.pt", model=UNET, seed=1, **SMALL_DATA)
    for checkpoint in (ours, theirs):
        Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=calibration_dir)
    (cached,), (foreign,) = int8_files(ours.parent), int8_files(theirs.parent)
    # Another model's file under our name, with a matching sha256 record: only its metadata tells.
    shutil.copy(foreign, cached)
    shutil.copy(foreign.with_name(foreign.name + ".sha256"), cached.with_name(cached.name + ".sha256"))
    with caplog.at_level(logging.WARNING, logger="img2img"):
        Translator.from_checkpoint(ours, device="cpu", precision="int8", calibration=calibration_dir)
    assert "made from another checkpoint; quantising again" in caplog.text
    assert precision.onnx_metadata(cached)[META_CHECKPOINT] == file_sha256(ours)

    cached.write_bytes(cached.read_bytes()[:1000])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="img2img"):
        translator = Translator.from_checkpoint(ours, device="cpu", precision="int8", calibration=calibration_dir)
    assert "does not match its recorded sha256" in caplog.text
    assert translator.translate(random_image(np.random.default_rng(2), 32, 32)).size == (32, 32)


def test_a_changed_calibration_set_quantises_again(tmp_path, calibration_dir, caplog):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=calibration_dir)
    other = tmp_path / "other"
    shutil.copytree(calibration_dir, other)
    with caplog.at_level(logging.WARNING, logger="img2img"):
        Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=other)
    assert "calibrated on --calibration" in caplog.text
    assert str(other.resolve()) in precision.onnx_metadata(int8_files(tmp_path)[0])[META_CALIBRATION]


def test_int8_calibrates_on_the_validation_split_the_checkpoint_names(tmp_path):
    data = make_paired(tmp_path / "data", n_val=3)
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, root=str(data), **SMALL_DATA)
    translator = Translator.from_checkpoint(checkpoint, device="cpu", precision="int8")
    assert translator.precision == {"AtoB": "int8"}
    assert f"the validation images of {data}" == precision.onnx_metadata(int8_files(tmp_path)[0])[META_CALIBRATION]


def test_unpaired_int8_calibrates_each_direction_on_its_own_domain(tmp_path, calibration_dir):
    checkpoint = make_checkpoint("cyclegan", tmp_path / "model.pt", **SMALL_DATA)
    translator = Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=calibration_dir)
    assert translator.precision == {"AtoB": "int8", "BtoA": "int8"}
    assert {precision.onnx_metadata(f)[META_DIRECTION] for f in int8_files(tmp_path)} == {"AtoB", "BtoA"}


def test_int8_without_calibration_images_is_refused_in_one_line(tmp_path):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, root=str(tmp_path / "gone"),
                                 **SMALL_DATA)
    with pytest.raises(Img2ImgError, match=r"validation split \(.*gone\) is not here; give --calibration DIR"):
        Translator.from_checkpoint(checkpoint, device="cpu", precision="int8")
    assert not int8_files(tmp_path)


def test_auto_keeps_fp32_for_a_model_too_small_to_gain_without_measuring(tmp_path, calibration_dir):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    translator = Translator.from_checkpoint(checkpoint, device="cpu", calibration=calibration_dir)
    assert translator.precision == {"AtoB": "fp32"}
    assert "int8 has nothing to gain" in translator.precision_reason["AtoB"]
    assert not int8_files(tmp_path)


def test_auto_keeps_fp32_when_int8_fails_the_gate_and_says_so(tmp_path, calibration_dir, monkeypatch, caplog):
    monkeypatch.setattr(precision, "MIN_GFLOP_FOR_INT8", 0.0)
    monkeypatch.setattr(precision, "MEASURE_SECONDS", 0.05)
    monkeypatch.setattr(precision, "GATE", QualityGate(mean_levels=0.0, p999_levels=0.0, min_speedup=1.15))
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    with caplog.at_level(logging.INFO, logger="img2img"):
        translator = Translator.from_checkpoint(checkpoint, device="cpu", calibration=calibration_dir)
    assert translator.precision == {"AtoB": "fp32"}
    assert getattr(translator.onnx.get("AtoB"), "precision", "fp32") == "fp32"
    reason = translator.precision_reason["AtoB"]
    assert reason.startswith("auto stays fp32: no reduced precision passed the gate (int8: ")
    assert reason in caplog.text
    (record,) = (tmp_path / "img2img_cache" / "int8").glob("*.auto.json")
    assert json.loads(record.read_text())["precision"] == "fp32"


def test_auto_takes_int8_when_it_passes_the_gate_and_remembers_the_choice(tmp_path, calibration_dir, monkeypatch):
    monkeypatch.setattr(precision, "MIN_GFLOP_FOR_INT8", 0.0)
    monkeypatch.setattr(precision, "MEASURE_SECONDS", 0.05)
    monkeypatch.setattr(precision, "GATE", QualityGate(mean_levels=255, p999_levels=255, min_speedup=0))
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    translator = Translator.from_checkpoint(checkpoint, device="cpu", calibration=calibration_dir)
    assert translator.precision == {"AtoB": "int8"}
    assert translator.precision_reason["AtoB"].startswith("auto chose int8: ")

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(precision, "measure", no_measuring)
    assert Translator.from_checkpoint(checkpoint, device="cpu", calibration=calibration_dir).precision == {"AtoB": "int8"}


@pytest.mark.parametrize("method,model", [("pix2pix", UNET), ("cyclegan", dict(netG="resnet_6blocks", ngf=8))])
def test_the_int8_export_loads_in_onnxruntime_with_its_metadata(method, model, tmp_path, calibration_dir, capsys):
    checkpoint = make_checkpoint(method, tmp_path / "model.pt", model=model, **SMALL_DATA)
    out = tmp_path / "export" / "g.onnx"
    assert main(["export", str(checkpoint), str(out), "--format", "onnx", "--precision", "int8", "--direction", "AtoB",
                 "--calibration", str(calibration_dir)]) == 0
    assert "int8 ONNX" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta[META_PRECISION] == "int8" and meta[META_DIRECTION] == "AtoB" and META_CONFIG in meta
    assert meta[META_CHECKPOINT] == file_sha256(checkpoint)
    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(out)).graph.node)
    x = np.zeros((1, 3, 64, 32), np.float32)
    assert session.run(None, {"image": x})[0].shape == (1, 3, 64, 32)
    translator = Translator.from_checkpoint(out, device="cpu")
    assert translator.precision == {"AtoB": "int8"}


@pytest.mark.parametrize("gate,tried", [
    (QualityGate(mean_levels=255, p999_levels=255, min_speedup=0), [("minmax", 1)]),
    (QualityGate(mean_levels=0, p999_levels=0, min_speedup=0),
     [(a, n) for a in ("minmax", "percentile") for n in precision.FLOAT_OUTPUT_LAYER_CHOICES])])
def test_int8_calibrates_activations_by_their_range_first_and_by_the_percentile_only_when_the_range_fails_the_gate(
        gate, tried, tmp_path, calibration_dir, monkeypatch, capsys):
    calls = []
    quantize = precision.quantize_int8

    def recorded(fp32, out, inputs, metadata, float_layers, activations):
        calls.append((activations, float_layers))
        return quantize(fp32, out, inputs, metadata, float_layers, activations)

    monkeypatch.setattr(precision, "quantize_int8", recorded)
    monkeypatch.setattr(precision, "GATE", gate)
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    out = tmp_path / "g.onnx"
    assert main(["export", str(checkpoint), str(out), "--format", "onnx", "--precision", "int8",
                 "--calibration", str(calibration_dir)]) == 0
    assert calls == tried
    meta = precision.onnx_metadata(out)
    assert (meta[precision.META_ACTIVATIONS], int(meta[precision.META_FLOAT_LAYERS])) == tried[-1]
    words = "by their range" if tried[-1][0] == "minmax" else "by the percentile"
    assert f"activations calibrated {words}, {tried[-1][1]} layer(s) next to the output in float" in capsys.readouterr().out


def test_export_refuses_int8_outside_onnx(tmp_path, capsys):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    assert main(["export", str(checkpoint), str(tmp_path / "g.pt"), "--precision", "int8"]) != 0
    assert capsys.readouterr().err == "error: --precision int8 writes ONNX: add --format onnx\n"
    assert not (tmp_path / "g.pt").exists()


def test_a_folder_translates_at_int8_and_says_so(tmp_path, calibration_dir, capsys):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    assert main(["translate", "--checkpoint", str(checkpoint), str(calibration_dir), str(tmp_path / "out"),
                 "--device", "cpu", "--precision", "int8", "--calibration", str(calibration_dir)]) == 0
    assert "(int8 (onnxruntime))" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("*.png"))) == 6


def test_an_unknown_precision_is_refused(tmp_path):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=UNET, **SMALL_DATA)
    with pytest.raises(Img2ImgError, match="precision must be one of auto, fp32, bf16, int8, not 'fp16'"):
        Translator.from_checkpoint(checkpoint, device="cpu", precision="fp16")


@pytest.mark.slow  # FlopCounterMode's first use imports for seconds
@pytest.mark.parametrize("netG", ["unet_32", "resnet_6blocks"])
def test_the_convolution_count_equals_torchs_flop_counter(netG):
    from torch.utils.flop_counter import FlopCounterMode


    cfg = new_run_config("pix2pix")
    cfg.model.netG, cfg.model.ngf = netG, 8
    generator = METHODS["pix2pix"].build_generator(cfg.model, "AtoB", "image").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        generator(torch.zeros(1, 3, 256, 256))
    assert precision.generator_gflop(generator, generator.size_multiple) == pytest.approx(
        counter.get_total_flops() / 1e9, rel=1e-9)


def test_a_file_is_hashed_again_once_it_changes(tmp_path):
    import hashlib
    import os

    from img2img.translate.onnx_graph import file_sha256

    path = tmp_path / "model.pt"
    path.write_bytes(b"first")
    assert file_sha256(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"other")
    os.utime(path, ns=(1, 1))  # whatever the clock's resolution, the modification time differs
    assert file_sha256(path) == hashlib.sha256(b"other").hexdigest()


def test_an_int8_cache_forged_with_our_metadata_and_record_is_caught_by_its_outputs(tmp_path, calibration_dir,
                                                                                    caplog):
    ours = make_checkpoint("pix2pix", tmp_path / "ours" / "model.pt", model=UNET, seed=0, **SMALL_DATA)
    theirs = make_checkpoint("pix2pix", tmp_path / "theirs" / "model.pt", model=UNET, seed=1, **SMALL_DATA)
    for checkpoint in (ours, theirs):
        Translator.from_checkpoint(checkpoint, device="cpu", precision="int8", calibration=calibration_dir)
    (cached,), (foreign,) = int8_files(ours.parent), int8_files(theirs.parent)
    # Another network, with every record a cache writer can rewrite made to say it is ours.
    forged = onnx.load(str(foreign))
    ours_meta = {p.key: p.value for p in onnx.load(str(cached)).metadata_props}
    del forged.metadata_props[:]
    for key, value in ours_meta.items():
        forged.metadata_props.add(key=key, value=value)
    onnx.save(forged, str(cached))
    cached.with_name(cached.name + ".sha256").write_text(file_sha256(cached) + "\n")
    with caplog.at_level(logging.WARNING, logger="img2img"):
        Translator.from_checkpoint(ours, device="cpu", precision="int8", calibration=calibration_dir)
    assert "the cached int8 model disagrees with its checkpoint's network; quantising it again" in caplog.text
