"""The Train tab's data and settings, without a server: the data report of every layout, uploads
refused in one line without a trace, names kept inside the data root, and the settings form that
is the CLI's flags."""
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import make_paired, make_unpaired, random_image
from PIL import Image

from img2img.cli import main as cli
from img2img.data.inspect import inspect_dataset
from img2img.errors import Img2ImgError
from img2img.service.datasets import DataRoot, UploadLimits
from img2img.service.training import TrainingService, form_settings


def zip_of(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, prefix + str(path.relative_to(folder)))
    return target


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_report_names_the_side_by_side_layout_counts_formats_and_method(tmp_path):
    root = make_paired(tmp_path / "pairs", n_train=5, n_val=2)
    Image.fromarray(np.zeros((32, 65, 3), np.uint8)).save(root / "train" / "odd.png")
    (root / "train" / "notes.txt").write_text("hello")
    (root / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report = inspect_dataset(root)
    assert (report.kind, report.method) == ("paired", "pix2pix")
    text = report.text()
    assert "A|B images side by side" in text and "train: 5 pairs" in text and "val: 2 pairs" in text
    assert "domain A: 3 channels uint8 0..255, 32x32" in text
    assert "odd.png: width 65 is odd" in text and "notes.txt: not an image file" in text and "broken.png" in text


@pytest.mark.parametrize("layout,kind,method,counts", [
    ("folders", "paired", "pix2pix", "train: 3 pairs"),
    ("unpaired", "unpaired", "cyclegan", "train: 3 A and 4 B images"),
    ("photos", "colour", "colorization", "train: 3 photos"),
])
def test_report_finds_each_layout_the_cli_trains_on(tmp_path, layout, kind, method, counts):
    rng = np.random.default_rng(0)
    root = tmp_path / layout
    if layout == "unpaired":
        make_unpaired(root)
    elif layout == "folders":
        for side in "AB":
            (root / "train" / side).mkdir(parents=True)
            for i in range(3):
                random_image(rng, 32, 32).save(root / "train" / side / f"{i}.png")
    else:
        root.mkdir()
        for i in range(3):
            random_image(rng, 48, 32).save(root / f"{i}.jpg")
    report = inspect_dataset(root)
    assert (report.kind, report.method.split()[0]) == (kind, method)
    assert counts in report.text()


def test_inspect_command_prints_the_report(tmp_path, capsys):
    root = make_paired(tmp_path / "pairs")
    assert cli(["inspect", str(root)]) == 0
    assert capsys.readouterr().out.strip() == inspect_dataset(root).text()


def bad_uploads(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (the zip, words its one-line refusal must hold)."""
    good = make_paired(tmp_path / "good")
    made = {}

    def members(name, entries, words):
        target = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            for entry in entries:
                entry(z)
        made[name] = (target, words)

    png = (good / "train" / "0.png").read_bytes()
    (tmp_path / "not_a_zip.zip").write_bytes(png)
    made["not a zip"] = (tmp_path / "not_a_zip.zip", "not a zip file")
    members("dotdot", [lambda z: z.writestr("train/0.png", png), lambda z: z.writestr("../escape.png", png)],
            "escapes the folder")
    members("absolute", [lambda z: z.writestr("/tmp/abs.png", png)], "absolute path")

    def link(z):
        info = zipfile.ZipInfo("train/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    members("link", [lambda z: z.writestr("train/0.png", png), link], "is a link")
    members("bomb", [lambda z: z.writestr("train/0.png", png), lambda z: z.writestr("train/zeros.bin", bytes(50 << 20))],
            "zip bomb")
    members("no images", [lambda z: z.writestr("readme.txt", "hello")], "holds no images")
    members("mixed", [lambda z: z.writestr("trainA/0.png", png), lambda z: z.writestr("trainB/0.png", png),
                      lambda z: z.writestr("train/0.png", png)], "mixed layouts")
    members("undecodable", [lambda z: z.writestr("train/0.png", png),
                            lambda z: z.writestr("train/1.png", png[: len(png) // 2])], "does not decode")
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("train/0.png", png)
        z.writestr("train/noise.bin", np.random.default_rng(0).bytes(3 << 20))
    made["too large"] = (big, "more than the 2 MB")
    return made


def test_each_bad_upload_is_refused_in_one_line_and_leaves_nothing_behind(tmp_path):
    root = DataRoot(tmp_path / "root", upload_limits=UploadLimits(max_upload_mb=2))
    for name, (upload, words) in bad_uploads(tmp_path).items():
        with pytest.raises(Img2ImgError) as refused:
            root.unpack(upload, upload.name)
        message = str(refused.value)
        assert words in message and "\n" not in message and upload.name in message, (name, message)
        assert everything_under(tmp_path / "root") == [], name
        assert root.datasets() == [], name


def test_a_good_upload_lands_in_uploads_with_its_report(tmp_path):
    zipped = zip_of(make_paired(tmp_path / "pairs", n_train=3), tmp_path / "my pairs.zip", prefix="pairs/")
    root = DataRoot(tmp_path / "root")
    name, report = root.unpack(zipped, zipped.name)
    assert name == "uploads/my_pairs" and root.datasets() == ["uploads/my_pairs"]
    assert report.root == tmp_path / "root" / "uploads" / "my_pairs" and report.train_count == 3
    again, _ = root.unpack(zipped, zipped.name)
    assert again == "uploads/my_pairs-2"
    assert [p.name for p in (tmp_path / "root" / "uploads").iterdir() if p.name.startswith(".")] == []


def test_a_zip_nested_folders_deep_is_found_inside_them(tmp_path):
    zipped = zip_of(make_paired(tmp_path / "pairs", n_train=3), tmp_path / "deep.zip", prefix="outer/inner/")
    name, report = DataRoot(tmp_path / "root").unpack(zipped, zipped.name)
    assert name == "uploads/deep" and report.train_count == 3


def test_names_that_lead_out_of_the_data_root_are_refused(tmp_path):
    outside = make_paired(tmp_path / "outside")
    root = tmp_path / "root"
    make_paired(root / "inside")
    os.symlink(outside, root / "link_out")
    os.symlink(outside / "train" / "0.png", root / "inside" / "train" / "sneaky.png")
    data = DataRoot(root)
    assert data.datasets() == ["inside"]
    for name, words in (("../outside", "not a folder under the data root"), (str(outside), "not a folder under"),
                        ("link_out", "leads out of the data root"), ("inside", "link out of the data root"),
                        ("missing", "no such folder")):
        with pytest.raises(Img2ImgError, match=words):
            data.resolve(name)


def test_every_train_flag_is_a_field_of_the_settings_form():
    from img2img.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    generated = {a.dest.split(".", 1)[1] for a in train._actions if "." in a.dest}
    # --init-from is the page's "Start from" menu: the models the server offers, never a path.
    assert {s.spec.name for s in form_settings()} == generated - {"init_from"}


def test_settings_become_the_cli_command_and_are_refused_in_the_cli_words(tmp_path):
    make_paired(tmp_path / "data" / "pairs")
    service = TrainingService(tmp_path / "data", tmp_path / "runs")
    plan = service.plan("pairs", "pix2pix", "quick", settings={"train.lr": "1e-4", "model.dropout": "off"})
    command = plan.command(service.runs)
    assert "--lr 0.0001" in command and "--no-dropout" in command and "--size 128" in command
    assert "--max-steps 600" in command
    custom = service.plan("pairs", "pix2pix", "custom", size=64, length=10, unit="epochs")
    assert (custom.cfg.train.epochs, custom.cfg.train.epochs_decay, custom.cfg.data.crop_size) == (5, 5, (64, 64))
    for settings, words in (({"train.lr": "abc"}, "--lr: 'abc' is not a number"),
                            ({"train.lr": "-1"}, "--lr -1.0: must be a number above 0"),
                            ({"model.norm": "group"}, "--norm: invalid choice 'group'"),
                            ({"data.size": "300"}, "--size 300 is larger than --load-size")):
        with pytest.raises(Img2ImgError, match=words):
            service.plan("pairs", "pix2pix", "custom", settings=settings)
    paper = service.plan("pairs", "pix2pix", "paper")
    assert paper.cfg.method_config.recipe == "paper" and paper.cfg.data.crop_size == (256, 256)


def test_unpacking_stops_between_members_at_the_requests_time_limit_and_leaves_nothing(tmp_path):
    import time

    from img2img.cancellation import StopSignal, stop_on

    make_paired(tmp_path / "pairs", n_train=40, n_val=0, size=16)
    archive = zip_of(tmp_path / "pairs", tmp_path / "pairs.zip")
    root = DataRoot(tmp_path / "data")
    signal = StopSignal(time_limit_s=0.01)
    time.sleep(0.02)  # past its deadline before the first member
    with pytest.raises(Img2ImgError, match="time limit"), stop_on(signal):
        root.unpack(archive, "pairs.zip")
    assert everything_under(tmp_path / "data") == []
