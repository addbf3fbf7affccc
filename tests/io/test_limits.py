"""Hostile inputs, tiny on disk and huge when decoded, refused from their headers in one line
that names the file, the limit and the flag that raises it, before any memory is spent."""
import resource
import time

import numpy as np
import pytest
from helpers import (
    make_video,
    nifti_header_only,
    npy_header_only,
    png_header_only,
    random_image,
    tiff_planes_header,
)

from img2img.cancellation import Cancelled, StopSignal, check_stop, stop_on
from img2img.errors import ImageReadError, Img2ImgError
from img2img.io.limits import Limits
from img2img.io.readers import read_image, read_volume
from img2img.translate.video import VideoSource

BOMBS = {
    "81 MP PNG": (lambda d: png_header_only(d / "wide.png", 9000, 9000), "over the 40 MP limit", "--max-pixels"),
    "32 float planes of 4000²": (lambda d: tiff_planes_header(d / "planes.tif", 32, 4000, 4000),
                                 "1,953 MB, over the limit of 1,024 MB", "--max-decoded-mb"),
    "100 planes": (lambda d: tiff_planes_header(d / "bands.tif", 100, 64, 64), "100 channels", "--max-channels"),
    "npy of 900 MP": (lambda d: npy_header_only(d / "big.npy", (30000, 30000, 3)), "900.0 MP", "--max-pixels"),
}


@pytest.mark.parametrize("name", BOMBS)
def test_an_image_bomb_is_refused_from_its_header_in_one_line(name, tmp_path):
    make, reason, flag = BOMBS[name]
    path = make(tmp_path)
    assert path.stat().st_size < 1000
    before_rss, before_cpu = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
    with pytest.raises(ImageReadError) as refused:
        read_image(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and reason in message and flag in message and "\n" not in message
    assert time.process_time() - before_cpu < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss < 50_000  # KB


@pytest.mark.parametrize("shape, reason", [((2048, 2048, 2048), "8,589,934,592 voxels"),
                                           ((1, 1, 32767), "32,767 slices")])
def test_a_volume_bomb_is_refused_from_its_header(shape, reason, tmp_path):
    path = nifti_header_only(tmp_path / "v.nii.gz", shape)
    with pytest.raises(ImageReadError, match=reason):
        read_volume(path)


def test_a_limit_is_raised_by_its_setting_not_skipped(tmp_path):
    path = tiff_planes_header(tmp_path / "bands.tif", 100, 64, 64)
    with pytest.raises(ImageReadError, match="100 channels"):
        read_image(path, limits=Limits(max_channels=99))
    # Raised far enough, the header passes and the reader goes on to the (absent) data.
    with pytest.raises(ImageReadError, match="cannot read image"):
        read_image(path, limits=Limits(max_channels=100))


def test_pil_opens_only_the_formats_it_reads_whatever_the_files_name(tmp_path):
    eps = tmp_path / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageReadError, match="drawing.png: cannot read image \\(not a JPEG, PNG, BMP, WebP or PPM"):
        read_image(eps)
    # A JPEG named .png, as datasets from the web often hold, still reads.
    random_image(np.random.default_rng(0), 16, 16).save(tmp_path / "photo.jpg")
    (tmp_path / "photo.jpg").rename(tmp_path / "photo.png")
    assert read_image(tmp_path / "photo.png").array.shape == (16, 16, 3)


def test_a_video_over_the_frame_size_limit_is_refused_before_decoding(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=2, size=(320, 240), audio=False)
    with pytest.raises(Img2ImgError, match=r"its frames \(320x240\) have 76,800 pixels, over the limit of 40,000 "
                                           r"pixels \(raise --max-video-pixels"):
        VideoSource(video, Limits(max_video_pixels=40_000))
    with pytest.raises(Img2ImgError, match="it has 2 frames, over the limit of 1 frames"):
        VideoSource(video, Limits(max_video_frames=1))
    VideoSource(video).close()


def test_work_stops_at_its_next_check_once_the_signal_is_set():
    signal = StopSignal()
    with stop_on(signal):
        check_stop()
        signal.set("cancelled by the client")
        with pytest.raises(Cancelled, match="cancelled by the client"):
            check_stop()
    check_stop()  # outside, nothing can stop the work


def test_a_time_limit_stops_the_work():
    with stop_on(StopSignal(time_limit_s=0.01)):
        time.sleep(0.02)
        with pytest.raises(Cancelled, match="time limit of 0.01 s"):
            check_stop()


def test_a_dicom_declaring_a_huge_image_is_refused_from_its_header(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID, meta.MediaStorageSOPClassUID = ExplicitVRLittleEndian, generate_uid()
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored = 30000, 30000, 1, 16, 16
    ds.PixelRepresentation, ds.PhotometricInterpretation, ds.PixelData = 0, "MONOCHROME2", b"\0\0"
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 1000
    with pytest.raises(ImageReadError, match="30000x30000 is 900.0 MP, over the 40 MP limit"):
        read_image(path)
