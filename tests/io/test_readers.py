"""One rule for pixels: a PIL image and the same picture given as a file path become the same
pixels, whatever the image's mode; and each format has its reader in the registry."""
import numpy as np
import pytest
from PIL import Image

from img2img.io.readers import (
    READERS,
    DicomReader,
    NiftiReader,
    NpyReader,
    PILReader,
    TiffReader,
    pil_pixels,
    read_image,
    reader_for,
)
from img2img.translate.translator import Translator


def picture(mode: str) -> Image.Image:
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (12, 16, 4), dtype=np.uint8), "RGBA")
    if mode == "P-transparent":
        image = rgba.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=16)
        image.info["transparency"] = 3
        return image
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16))
    return rgba.convert(mode)


@pytest.mark.parametrize("mode,suffix,channels", [("LA", ".png", 1), ("1", ".png", 1), ("P-transparent", ".png", 3),
                                                  ("I;16", ".png", 1), ("CMYK", ".jpg", 3), ("RGBA", ".png", 3)])
def test_a_pil_image_and_its_file_give_the_same_pixels(mode, suffix, channels, tmp_path):
    path = tmp_path / f"picture{suffix}"
    picture(mode).save(path)
    from_file = read_image(path).array
    with Image.open(path) as opened:
        from_pil = pil_pixels(opened).array
    assert from_file.shape[2] == channels
    assert from_file.dtype == from_pil.dtype and np.array_equal(from_file, from_pil)


@pytest.mark.parametrize("mode", ["LA", "1", "P-transparent", "CMYK"])
def test_the_translator_takes_a_pil_image_as_it_takes_its_file(mode, tmp_path):
    from helpers import BUNDLED

    translator = Translator.from_checkpoint(BUNDLED, device="cpu", engine="torch")
    path = tmp_path / ("picture.jpg" if mode == "CMYK" else "picture.png")
    picture(mode).save(path)
    with Image.open(path) as opened:
        assert np.array_equal(translator.pixels_of(opened, "AtoB"), translator.pixels_of(path, "AtoB"))


@pytest.mark.parametrize("name,reader", [("a.png", PILReader), ("a.JPG", PILReader), ("a.tif", TiffReader),
                                         ("a.npy", NpyReader), ("a.dcm", DicomReader), ("a.nii.gz", NiftiReader),
                                         ("a.nii", NiftiReader)])
def test_each_format_has_its_reader(name, reader, tmp_path):
    assert isinstance(reader_for(tmp_path / name), reader)
    assert sum(isinstance(r, reader) for r in READERS) == 1
