import hashlib

import numpy as np
import pytest
import torch
from helpers import TINY_PIX2PIX, make_paired, random_image
from PIL import Image

from img2img.cli import main
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.translate.batch import translate_files
from img2img.translate.translator import Translator, pad_to_multiple


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    data = make_paired(root / "data")
    main(["train", "--data", str(data), "--out", str(root / "run"), "--max-steps", "1", *TINY_PIX2PIX])
    return root / "run" / "checkpoints" / "latest.pt"


@pytest.mark.slow
@pytest.mark.parametrize("w,h", [(45, 37), (32, 32), (7, 90)])
def test_any_size_comes_back_at_its_own_size(checkpoint, w, h):
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    out = translator.translate(random_image(np.random.default_rng(0), w, h))
    assert out.size == (w, h) and out.mode == "RGB"


def test_resize_option_restores_the_input_size(checkpoint):
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    out = translator.translate(random_image(np.random.default_rng(0), 50, 20), size=32)
    assert out.size == (50, 20)


def test_batched_translation_equals_one_by_one(checkpoint):
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    ims = [random_image(rng, 32, 32) for _ in range(3)] + [random_image(rng, 40, 24)]
    together = translator.translate(ims, batch_size=8)
    alone = [translator.translate(im) for im in ims]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(together, alone))


def test_padding_reaches_the_next_multiple():
    import torch

    assert pad_to_multiple(torch.zeros(1, 3, 33, 64), 32).shape == (1, 3, 64, 64)
    assert pad_to_multiple(torch.zeros(1, 3, 5, 5), 32).shape == (1, 3, 32, 32)  # too small to reflect


def digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_folder_run_mirrors_structure_reports_failures_and_converts_the_rest(checkpoint, tmp_path, capsys):
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    (src / "sub").mkdir(parents=True)
    random_image(rng, 32, 32).save(src / "a.png")
    random_image(rng, 40, 30).save(src / "sub" / "b.jpg")
    (src / "broken.png").write_bytes(b"garbage")
    (src / "notes.txt").write_text("not an image")
    before = digest(src)
    rc = main(["translate", "--checkpoint", str(checkpoint), str(src), str(tmp_path / "out"), "--device", "cpu"])
    assert rc == 1
    assert (tmp_path / "out" / "a.png").is_file()
    assert Image.open(tmp_path / "out" / "sub" / "b.png").size == (40, 30)
    report = capsys.readouterr().out
    assert "converted 2, skipped 0 (already done), failed 1, ignored 1 non-image files" in report
    assert "broken.png: cannot read image" in report
    assert digest(src) == before  # inputs never modified
    assert not list((tmp_path / "out").rglob("*.tmp"))
    rc = main(["translate", "--checkpoint", str(checkpoint), str(src), str(tmp_path / "out"), "--device", "cpu"])
    assert "converted 0, skipped 2 (already done), failed 1" in capsys.readouterr().out


def test_shards_split_the_files_between_ranks(checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        random_image(rng, 32, 32).save(src / f"{i}.png")
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    reports = [translate_files(translator, src, tmp_path / "out", shard=(r, 2), num_workers=0) for r in range(2)]
    assert [r.converted for r in reports] == [3, 2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}.png" for i in range(5)]


def test_existing_outputs_are_skipped_unless_overwrite(checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    random_image(np.random.default_rng(0), 32, 32).save(src / "a.png")
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    assert translate_files(translator, src, tmp_path / "out").converted == 1
    report = translate_files(translator, src, tmp_path / "out")
    assert (report.converted, report.skipped) == (0, 1)
    assert translate_files(translator, src, tmp_path / "out", overwrite=True).converted == 1


def test_output_inside_input_is_refused(checkpoint, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rc = main(["translate", "--checkpoint", str(checkpoint), str(src), str(src / "out"), "--device", "cpu"])
    assert rc == 2
    assert "may not lie inside the input folder" in capsys.readouterr().err


def test_pix2pix_has_no_reverse_direction(checkpoint, tmp_path, capsys):
    random_image(np.random.default_rng(0), 32, 32).save(tmp_path / "a.png")
    rc = main(["translate", "--checkpoint", str(checkpoint), str(tmp_path / "a.png"), str(tmp_path / "o"),
               "--direction", "BtoA", "--device", "cpu"])
    assert rc == 2 and "AtoB only" in capsys.readouterr().err


def test_not_a_checkpoint_gets_a_clear_error(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"nonsense")
    rc = main(["translate", "--checkpoint", str(tmp_path / "x.pt"), str(tmp_path), str(tmp_path / "o")])
    assert rc == 2 and "x.pt: not a readable img2img checkpoint" in capsys.readouterr().err


def test_export_can_name_the_domains_without_touching_the_weights(checkpoint, tmp_path):
    renamed, plain = tmp_path / "renamed.pt", tmp_path / "plain.pt"
    assert main(["export", str(checkpoint), str(renamed), "--domain-a", "aerial photo", "--domain-b", "map"]) == 0
    assert main(["export", str(checkpoint), str(plain)]) == 0
    renamed_state, plain_state = load_checkpoint(renamed), load_checkpoint(plain)
    data = checkpoint_config(renamed_state).data
    assert (data.domain_a, data.domain_b) == ("aerial photo", "map")
    assert checkpoint_config(plain_state).data.domain_a == checkpoint_config(load_checkpoint(checkpoint)).data.domain_a
    for key, weights in plain_state["method"]["networks"].items():
        assert all(torch.equal(v, renamed_state["method"]["networks"][key][k]) for k, v in weights.items())


def test_domain_names_for_an_onnx_export_are_a_one_line_error(checkpoint, tmp_path, capsys):
    rc = main(["export", "--format", "onnx", str(checkpoint), str(tmp_path / "g.onnx"), "--domain-a", "aerial photo"])
    assert rc == 2 and "an ONNX graph has no config" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.slow
def test_exported_generator_is_small_and_translates_like_the_full_checkpoint(checkpoint, tmp_path):
    out = tmp_path / "g.pt"
    assert main(["export", str(checkpoint), str(out)]) == 0
    assert out.stat().st_size < checkpoint.stat().st_size / 2
    image = random_image(np.random.default_rng(0), 32, 32)
    full = np.asarray(Translator.from_checkpoint(checkpoint, device="cpu").translate(image), int)
    small = np.asarray(Translator.from_checkpoint(out, device="cpu").translate(image), int)
    assert np.abs(full - small).max() <= 2  # fp16 weights


def test_outputs_whose_names_collide_get_a_suffix_and_the_report_says_so(tmp_path, capsys):
    from helpers import CHECKPOINT_FIXTURES

    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "a.jpg", "a.bmp"):
        random_image(rng, 32, 32).save(tmp_path / "in" / name)
    assert main(["translate", "--checkpoint", str(CHECKPOINT_FIXTURES / "pix2pix.pt"), str(tmp_path / "in"),
                 str(tmp_path / "out"), "--device", "cpu", "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "a_bmp.png", "a_jpg.png"]
    assert "converted 3" in out
    assert "renamed: " in out and out.count("(another input's output has its name)") == 2


def test_an_output_that_is_its_own_input_is_refused_and_the_input_kept(tmp_path, capsys):
    from helpers import CHECKPOINT_FIXTURES

    image = tmp_path / "same.png"
    random_image(np.random.default_rng(0), 32, 32).save(image)
    before = image.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["translate", "--checkpoint", str(CHECKPOINT_FIXTURES / "pix2pix.pt"), str(image), str(image),
                     "--device", "cpu", *extra]) != 0
        assert "is the input itself" in capsys.readouterr().err
    assert image.read_bytes() == before
