"""Downloads (served from 127.0.0.1 by the tests), safe extraction, edges and combine."""
import io
import tarfile
import zipfile

import numpy as np
import pytest
from helpers import Server
from PIL import Image, ImageDraw

from img2img.cli import main
from img2img.data.prepare import COMPLETE_MARKER, combine_folders, download_dataset, make_edges_dataset
from img2img.download import download
from img2img.errors import Img2ImgError


@pytest.fixture
def file_server():
    s = Server()
    yield s
    s.httpd.shutdown()


def png_bytes(w=8, h=4) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "gray").save(buf, format="PNG")
    return buf.getvalue()


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


PIX2PIX_MEMBERS = {f"facades/{split}/1.jpg": png_bytes() for split in ("train", "val", "test")}
CYCLEGAN_MEMBERS = {f"horse2zebra/{d}/x.jpg": png_bytes(4, 4) for d in ("trainA", "trainB", "testA", "testB")}


def test_tar_gz_download_extracts_to_the_pix2pix_layout(file_server, tmp_path):
    file_server.files["/facades.tar.gz"] = tar_gz(PIX2PIX_MEMBERS)
    target = download_dataset("facades", tmp_path, url=file_server.url("/facades.tar.gz"))
    assert target == tmp_path / "facades"
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "test", "train", "val"]
    assert not (tmp_path / ".downloads" / "facades.tar.gz").exists()


def test_zip_download_extracts_to_the_cyclegan_layout(file_server, tmp_path):
    file_server.files["/horse2zebra.zip"] = zip_bytes(CYCLEGAN_MEMBERS)
    assert main(["datasets", "download", "horse2zebra", "--root", str(tmp_path),
                 "--url", file_server.url("/horse2zebra.zip")]) == 0
    assert (tmp_path / "horse2zebra" / "trainA" / "x.jpg").is_file()
    assert (tmp_path / "horse2zebra" / "testB" / "x.jpg").is_file()


def test_rerunning_a_completed_download_does_nothing(file_server, tmp_path):
    file_server.files["/facades.tar.gz"] = tar_gz(PIX2PIX_MEMBERS)
    download_dataset("facades", tmp_path, url=file_server.url("/facades.tar.gz"))
    count = len(file_server.requests)
    download_dataset("facades", tmp_path, url=file_server.url("/facades.tar.gz"))
    assert len(file_server.requests) == count


def test_interrupted_download_resumes_with_a_range_request(file_server, tmp_path):
    data = bytes(range(256)) * 4000
    file_server.files["/big.bin"] = data
    file_server.cut_next = True
    with pytest.raises(Img2ImgError, match="interrupted.*run the command again to resume"):
        download(file_server.url("/big.bin"), tmp_path / "big.bin")
    part = tmp_path / "big.bin.part"
    assert 0 < part.stat().st_size < len(data) and not (tmp_path / "big.bin").exists()
    download(file_server.url("/big.bin"), tmp_path / "big.bin")
    assert (tmp_path / "big.bin").read_bytes() == data
    assert file_server.requests[-1][1] == f"bytes={len(data) // 2}-"


def test_wrong_expected_size_is_refused(file_server, tmp_path):
    file_server.files["/f"] = b"12345"
    with pytest.raises(Img2ImgError, match="expected 6"):
        download(file_server.url("/f"), tmp_path / "f", expected_size=6)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("archive,name", [
    (lambda: tar_gz({"facades/train/1.jpg": b"x", "../evil.txt": b"x"}), "facades.tar.gz"),
    (lambda: tar_gz({"facades/train/1.jpg": b"x", "/tmp/evil.txt": b"x"}), "facades.tar.gz"),
    (lambda: tar_gz({"facades/train/1.jpg": b"x"}, links={"facades/train/link": "../../../etc/passwd"}),
     "facades.tar.gz"),
    (lambda: zip_bytes({"facades/train/1.jpg": b"x", "../evil.txt": b"x"}), "facades.zip"),
])
@pytest.mark.slow
def test_archive_escaping_the_root_is_refused_whole(file_server, tmp_path, archive, name):
    file_server.files[f"/{name}"] = archive()
    root = tmp_path / "root"
    with pytest.raises(Img2ImgError, match="refused"):
        download_dataset("facades", root, url=file_server.url(f"/{name}"))
    assert not (tmp_path / "evil.txt").exists() and not (root / "facades").exists()
    assert not [p for p in root.rglob("*") if p.is_file() and p.suffix != ".gz" and p.suffix != ".zip"]


def test_cityscapes_explains_where_to_get_it(tmp_path, capsys):
    assert main(["datasets", "download", "cityscapes", "--root", str(tmp_path)]) == 2
    assert "cityscapes-dataset.com" in capsys.readouterr().err


def shape_photo(rng, w=96, h=72):
    im = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(150, 255, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x, y = (int(v) for v in rng.integers(5, 40, 2))
        draw.ellipse((x, y, x + 30, y + 25), fill=tuple(int(c) for c in rng.integers(0, 120, 3)))
    return im


def test_edges_dataset_has_thin_dark_lines_on_white_beside_the_photo(tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i in range(12):
        shape_photo(rng).save(photos / ("sub" if i % 3 == 0 else "") / f"p{i}.jpg")
    (photos / "readme.txt").write_text("not a photo")
    report = make_edges_dataset(photos, tmp_path / "out", size=64, val_fraction=0.25)
    assert report.written == 12
    assert any("readme.txt: not an image file" in p for p in report.problems)
    train, val = sorted((tmp_path / "out" / "train").iterdir()), sorted((tmp_path / "out" / "val").iterdir())
    assert len(train) + len(val) == 12 and val
    pair = np.asarray(Image.open(train[0]).convert("L"))
    assert pair.shape == (64, 128)
    edges = pair[:, :64] < 128
    assert 0.005 < edges.mean() < 0.2  # a few dark lines on a white page
    # Thin: a 3x3 erosion removes almost every line pixel.
    eroded = edges[1:-1, 1:-1] & edges[:-2, 1:-1] & edges[2:, 1:-1] & edges[1:-1, :-2] & edges[1:-1, 2:]
    assert eroded.sum() < 0.2 * edges.sum()
    # The split depends only on file names: a second run gives the same one.
    make_edges_dataset(photos, tmp_path / "again", size=64, val_fraction=0.25)
    assert [p.name for p in val] == sorted(p.name for p in (tmp_path / "again" / "val").iterdir())


def test_combine_pairs_same_names_and_reports_unmatched(tmp_path, capsys):
    for folder, names, size in (("a", ["x", "y", "only_a"], (8, 6)), ("b", ["x", "y", "only_b"], (4, 3))):
        (tmp_path / folder).mkdir()
        for n in names:
            Image.new("RGB", size, "red").save(tmp_path / folder / f"{n}.png")
    report = combine_folders(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    assert report.written == 0 and sum("differs from A's" in p for p in report.problems) == 2
    assert main(["datasets", "combine", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                 "--output", str(tmp_path / "out"), "--resize-b"]) == 0
    out = capsys.readouterr().out
    assert "2 written" in out and "unmatched" in out and "only_a" in out and "only_b" in out
    assert Image.open(tmp_path / "out" / "x.png").size == (16, 6)
