"""Videos: translated with their frame rate, frame count, size, rotation and audio; the
temporal statistics against flicker; and the refusals of bad input."""
from __future__ import annotations

import errno
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import TINY_CYCLEGAN, make_unpaired, make_video

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.models.norm import FrameStatistics
from img2img.translate.translator import Translator
from img2img.translate.video import translate_video, video_info


@pytest.fixture(scope="module")
def video_checkpoint(tmp_path_factory) -> Path:
    """A tiny CycleGAN (instance norm, so every frame has its own statistics)."""
    root = tmp_path_factory.mktemp("video_model")
    main(["train", "--data", str(make_unpaired(root / "data")), "--out", str(root / "run"), "--max-steps", "1",
          *TINY_CYCLEGAN])
    return root / "run" / "checkpoints" / "latest.pt"


@pytest.fixture(scope="module")
def translator(video_checkpoint):
    return Translator.from_checkpoint(video_checkpoint, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("size", [(64, 48), (65, 41)], ids=["even", "odd"])
def test_a_video_keeps_its_frame_rate_count_size_and_audio(translator, tmp_path, size):
    src = make_video(tmp_path / "clip.mp4", frames=30, size=size, fps=Fraction(30000, 1001))
    report = translator.translate_video(src, tmp_path / "out.mp4", show_bar=False)
    before, after = video_info(src), video_info(tmp_path / "out.mp4")
    assert after["frames"] == before["frames"] == report.frames == 30
    assert after["fps"] == before["fps"] == Fraction(30000, 1001)
    assert after["sizes"] == {size} and after["codec"] == "h264"
    assert after["pixel_format"] == ("yuv420p" if size[0] % 2 == 0 else "yuv444p")
    assert after["duration"] == pytest.approx(before["duration"], abs=0.05)
    assert after["audio"] == "aac" and after["audio_seconds"] == pytest.approx(before["audio_seconds"], abs=0.03)
    assert report.audio == "copied (aac)" and report.flicker is not None


def test_a_rotated_phone_video_comes_out_upright(translator, tmp_path):
    src = make_video(tmp_path / "portrait.mp4", size=(64, 48), rotate90=True)
    assert video_info(src)["rotation"] == -90
    translate_video(translator, src, tmp_path / "out.mp4", show_bar=False)
    after = video_info(tmp_path / "out.mp4")
    assert after["sizes"] == {(48, 64)} and after["rotation"] == 0


def test_audio_the_container_cannot_hold_is_re_encoded(translator, tmp_path):
    src = make_video(tmp_path / "clip.mkv", frames=12)
    report = translate_video(translator, src, tmp_path / "out.webm", show_bar=False)
    after = video_info(tmp_path / "out.webm")
    assert report.audio == "re-encoded (aac -> libopus)" and after["audio"] == "opus"
    assert after["frames"] == 12 and after["codec"] == "vp9"


@pytest.mark.slow
def test_the_cli_mirrors_a_folder_of_videos_and_images(video_checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    make_video(folder / "a" / "clip.mp4", frames=10)
    make_video(folder / "b.mov", frames=8, audio=False)
    from helpers import random_image

    random_image(np.random.default_rng(0), 32, 32).save(folder / "still.png")
    checkpoint = str(video_checkpoint)
    assert main(["translate", "--checkpoint", checkpoint, str(folder), str(tmp_path / "out")]) == 0
    assert video_info(tmp_path / "out" / "a" / "clip.mp4")["frames"] == 10
    assert video_info(tmp_path / "out" / "b.mov")["audio"] is None
    assert (tmp_path / "out" / "still.png").is_file()
    said = capsys.readouterr().out
    assert "clip.mp4: 10 frames 64x48 at 24.000 fps, libx264 yuv420p, audio copied (aac)" in said
    assert "converted 3," in said
    # As for images, an existing output is skipped unless --overwrite.
    single = ["translate", "--checkpoint", checkpoint, str(folder / "a" / "clip.mp4"),
              str(tmp_path / "out" / "a" / "clip.mp4")]
    assert main(single) == 0 and "skipped 1 (already done)" in capsys.readouterr().out
    assert main([*single, "--overwrite", "--temporal-statistics", "3"]) == 0
    assert "statistics over 3 frames" in capsys.readouterr().out


def test_temporal_statistics_of_one_frame_equal_per_frame_translation(translator):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(5)]
    alone = [translator.translate_pixels(f) for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(translator.translate_frames(frames, batch_size=2), alone))
    # The pooled path with a window of one frame computes the same statistics by hand.
    pooled = translator.translate_frames(frames, batch_size=2, statistics=FrameStatistics(1))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(pooled, alone)) <= 1


def test_pooled_statistics_steady_the_background_when_an_object_comes_and_goes(translator):
    """A bright square in every other frame shifts per-frame statistics, and with them the tone of
    the whole frame; statistics pooled over frames keep the unchanged background steadier."""
    rng = np.random.default_rng(1)
    scene = rng.integers(40, 120, (32, 32, 3)).astype(np.uint8)
    frames = []
    for i in range(12):
        frame = scene.copy()
        if i % 2:
            frame[:12, :12] = 255
        frames.append(frame)

    def background_flicker(outputs):
        return np.mean([np.abs(b[16:, 16:].astype(float) - a[16:, 16:]).mean() for a, b in zip(outputs, outputs[1:])])

    per_frame = background_flicker(translator.translate_frames(frames))
    pooled = background_flicker(translator.translate_frames(frames, statistics=FrameStatistics(6)))
    assert pooled < 0.75 * per_frame


def write_corrupt(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return path


def test_bad_videos_get_one_line_and_leave_nothing_at_the_output(translator, tmp_path, capsys):
    import wave

    with wave.open(str(tmp_path / "sound.mp4"), "wb") as w:  # audio only (a WAV named .mp4)
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\x00\x00" * 800)
    cases = {write_corrupt(tmp_path / "corrupt.mp4"): "cannot read video",
             tmp_path / "sound.mp4": "has no video stream"}
    for src, message in cases.items():
        with pytest.raises(Img2ImgError, match=message):
            translate_video(translator, src, tmp_path / "out.mp4", show_bar=False)
        assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.mp4.part").exists()
    clip = make_video(tmp_path / "clip.mp4", frames=6)
    with pytest.raises(Img2ImgError, match="--codec nosuchcodec: not available"):
        translate_video(translator, clip, tmp_path / "out.mp4", codec="nosuchcodec", show_bar=False)
    assert not list(tmp_path.glob("out.mp4*"))


def test_every_decoded_frame_is_held_to_the_limits_not_only_the_header(translator, tmp_path, monkeypatch):
    """A stream may change its frame size mid-way (64 px, then 8192 px): each frame is checked
    as it is decoded, before it is converted or batched. The header check is set aside here, as
    such a stream would pass it."""
    from img2img.io.limits import Limits
    from img2img.translate.video import VideoSource

    clip = make_video(tmp_path / "clip.mp4", frames=6, size=(64, 48))
    monkeypatch.setattr(VideoSource, "over", lambda self, limits: None)
    with pytest.raises(Img2ImgError, match=r"clip.mp4: frame 1 \(64x48\) has 3,072 pixels, over the limit of 1,000 "
                                           r"pixels \(raise --max-video-pixels to allow it\)"):
        translate_video(translator, clip, tmp_path / "out.mp4", show_bar=False, limits=Limits(max_video_pixels=1000))
    assert not list(tmp_path.glob("out.mp4*"))


def test_a_disk_filling_up_during_encoding_leaves_nothing_half_written(translator, tmp_path, monkeypatch):
    clip = make_video(tmp_path / "clip.mp4", frames=20)
    real_mux = av.container.OutputContainer.mux
    calls = {"n": 0}

    def mux(self, packets):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mux(self, packets)

    monkeypatch.setattr(av.container.OutputContainer, "mux", mux)
    with pytest.raises(Img2ImgError, match="disk full while writing the video; nothing was left"):
        translate_video(translator, clip, tmp_path / "out.mp4", batch_size=2, show_bar=False)
    assert not list(tmp_path.glob("out.mp4*"))


def test_an_interrupted_run_leaves_nothing_at_the_output(translator, tmp_path, monkeypatch):
    clip = make_video(tmp_path / "clip.mp4", frames=20)
    real = Translator.translate_frames

    def interrupted(self, frames, **kwargs):
        if getattr(interrupted, "seen", False):
            raise KeyboardInterrupt
        interrupted.seen = True
        return real(self, frames, **kwargs)

    monkeypatch.setattr(Translator, "translate_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        translate_video(translator, clip, tmp_path / "out.mp4", batch_size=4, show_bar=False)
    assert not list(tmp_path.glob("out.mp4*"))


@pytest.mark.slow
def test_huge_frames_are_tiled(translator, tmp_path, monkeypatch):
    from img2img.translate import tiling as tiling_module

    monkeypatch.setattr(tiling_module, "AUTO_TILE_PIXELS", 32 * 32)
    tiled_frames = []
    real = Translator.translate_tiled

    def counting(self, pixels, direction, tiling):
        tiled_frames.append(tiling.tile)
        return real(self, pixels, direction, tiling)

    monkeypatch.setattr(Translator, "translate_tiled", counting)
    clip = make_video(tmp_path / "clip.mp4", frames=4, size=(64, 48))
    report = translate_video(translator, clip, tmp_path / "out.mp4", show_bar=False)
    assert report.frames == 4 and len(tiled_frames) == 4
