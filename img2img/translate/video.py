"""Video files in and out, on PyAV (FFmpeg's libraries).

A video is decoded in one thread, translated in batches of frames in the caller's, and encoded
and written in another, so that decoding, the network and encoding overlap. The output keeps the
input's frame rate, frame count and (upright) size; H.264 in yuv420p by default (yuv444p where a
side is odd, which 4:2:0 cannot hold); the audio stream is copied without re-encoding where the
output container can hold its codec, else re-encoded. It is written to OUT.part and renamed
once complete, so an interrupted run leaves nothing at OUT.

Flicker: per-frame normalisation (instance norm, per-image batch norm) gives each frame its own
statistics and so its own tone. `temporal_statistics=N` normalises each frame by statistics
pooled over the trailing window of N frames (`models.norm.FrameStatistics`); N=1 is per-frame.
The report measures flicker as the mean absolute difference between consecutive output frames
over the same figure for the input frames.
"""
from __future__ import annotations

import errno
import os
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Img2ImgError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
# Audio codecs each container holds as they are (None: any); others are re-encoded.
AUDIO_COPYABLE = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "matroska": None,
    "webm": {"opus", "vorbis"},
    "avi": {"mp3", "ac3", "pcm_s16le"},
}
AUDIO_REENCODE = {"webm": "libopus"}  # else aac
VIDEO_CODECS = {"webm": "libvpx-vp9"}  # else H.264
DEFAULT_CRF = 18
# The default window of --temporal-statistics: per frame. On the maps "drone flight" pooling over
# 4-16 frames did not lower flicker and cost 2.2-2.4x (benchmarks/RESULTS.md, "Video").
DEFAULT_TEMPORAL_STATISTICS = 1


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class VideoReport:
    source: str
    frames: int
    fps: Fraction
    width: int
    height: int
    codec: str
    pixel_format: str
    audio: str  # "copied (aac)", "re-encoded (pcm_s16le -> aac)", "none"
    seconds: float
    flicker: float | None  # output/input mean absolute difference of consecutive frames
    temporal_statistics: int

    def summary(self) -> str:
        flicker = f", flicker {self.flicker:.3f} of the input's" if self.flicker is not None else ""
        pooled = f", statistics over {self.temporal_statistics} frames" if self.temporal_statistics > 1 else ""
        return (f"{self.source}: {self.frames} frames {self.width}x{self.height} at {float(self.fps):.3f} fps, "
                f"{self.codec} {self.pixel_format}, audio {self.audio}; {self.frames / max(self.seconds, 1e-9):.2f} "
                f"frames/s{pooled}{flicker}")


class FlickerMeter:
    """Sums of the mean absolute differences of consecutive frames, input and output."""

    def __init__(self) -> None:
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.input_total = self.output_total = 0.0

    def add(self, source: np.ndarray, result: np.ndarray) -> None:
        current = (source.astype(np.float32), result.astype(np.float32))
        if self.previous is not None:
            self.input_total += float(np.abs(current[0] - self.previous[0]).mean())
            self.output_total += float(np.abs(current[1] - self.previous[1]).mean())
        self.previous = current

    @property
    def ratio(self) -> float | None:
        return self.output_total / self.input_total if self.input_total > 0 else None


def _open_input(src: Path):
    import av

    try:
        container = av.open(str(src))
    except FileNotFoundError:
        raise Img2ImgError(f"{src}: no such file") from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise Img2ImgError(f"{src}: cannot read video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise Img2ImgError(f"{src}: has no video stream")
    return container


def _reason(e: Exception) -> str:
    return str(e).split(": '", 1)[0].strip() or type(e).__name__


def _upright(frame) -> np.ndarray:
    """RGB pixels with the stream's display rotation applied (phones store portrait video as
    landscape frames plus a rotation)."""
    pixels = frame.to_ndarray(format="rgb24")
    rotation = getattr(frame, "rotation", 0)
    turns = round(rotation / 90) % 4 if abs(rotation) <= 360 else 0  # FFmpeg reports INT_MIN for none
    return np.ascontiguousarray(np.rot90(pixels, k=turns)) if turns else pixels


class _Worker(threading.Thread):
    """A thread whose exception the caller re-raises."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(daemon=True, name=name)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as e:  # handed to the caller
            self.error = e


_END = object()


def translate_video(translator, src: Path | str, dst: Path | str, *, direction: str = "AtoB", batch_size: int = 8,
                    temporal_statistics: int = DEFAULT_TEMPORAL_STATISTICS, crf: int = DEFAULT_CRF,
                    codec: str | None = None, overwrite: bool = False, tile: int | None = None,
                    progress: Callable[[int, int | None], None] | None = None, show_bar: bool = True) -> VideoReport:
    """Translate video `src` into `dst` (its container from the suffix). `progress(done, total)`
    is called after each batch; `show_bar` draws a tqdm bar in frames with frames/s and ETA."""
    import av
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    if temporal_statistics < 1:
        raise Img2ImgError(f"--temporal-statistics {temporal_statistics}: a window of at least 1 frame")
    container_format = CONTAINERS.get(dst.suffix.lower())
    if container_format is None:
        raise Img2ImgError(f"{dst}: cannot write {dst.suffix or 'suffix-less'} videos; use one of "
                           f"{', '.join(sorted(CONTAINERS))}")
    if dst.exists() and not overwrite:
        raise Img2ImgError(f"{dst}: exists (use --overwrite to replace it)")
    translator.network(direction)
    source = _open_input(src)
    part = dst.with_name(dst.name + ".part")
    dst.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        video_in = source.streams.video[0]
        if video_in.codec_context is None:
            raise Img2ImgError(f"{src}: its video codec ({video_in.codec_tag or 'unknown'}) cannot be decoded here")
        video_in.thread_type = "AUTO"
        audio_in = source.streams.audio[0] if source.streams.audio else None
        rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
        total = video_in.frames or (int(float(video_in.duration * video_in.time_base) * rate)
                                    if video_in.duration else None)
        frames: queue.Queue = queue.Queue(maxsize=4 * batch_size)
        writes: queue.Queue = queue.Queue(maxsize=8)
        # Audio is small, and may come before the first video frame: never a reason to block.
        audio_items: queue.Queue = queue.Queue()
        audio_mode = "none"
        if audio_in is not None:
            copyable = AUDIO_COPYABLE[container_format]
            name = audio_in.codec_context.name
            audio_mode = "copy" if copyable is None or name in copyable else "encode"
        stop = threading.Event()

        def decode() -> None:
            streams = [video_in] + ([audio_in] if audio_in is not None else [])
            try:
                for packet in source.demux(*streams):
                    if stop.is_set():
                        return
                    if packet.stream.type == "audio":
                        if audio_mode == "copy" and packet.dts is not None:
                            audio_items.put(packet)
                        elif audio_mode == "encode":
                            for frame in packet.decode():
                                audio_items.put(frame)
                        continue
                    for frame in packet.decode():
                        frames.put(_upright(frame))
            except av.error.FFmpegError as e:
                raise Img2ImgError(f"{src}: cannot decode video ({_reason(e)})") from None
            finally:
                frames.put(_END)

        decoder = _Worker(decode, "video-decode")
        first = None
        decoder.start()
        first = frames.get()
        if first is _END:
            decoder.join()
            if decoder.error is not None:
                raise decoder.error
            raise Img2ImgError(f"{src}: no frame could be decoded")
        height, width = first.shape[:2]
        target = translator.formats(direction).target
        out_channels = target.channels
        if out_channels not in (1, 3) or target.dtype != "uint8":
            raise Img2ImgError(f"this model writes {target.describe()} images; videos hold 8-bit grey or RGB")
        codec = codec or VIDEO_CODECS.get(container_format, "libx264")
        pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        output = av.open(str(part), "w", format=container_format)
        try:
            video_out = output.add_stream(codec, rate=rate, options={"crf": str(crf)} if "x26" in codec or
                                          "vpx" in codec else {})
        except (av.error.FFmpegError, ValueError) as e:
            output.close()
            raise Img2ImgError(f"--codec {codec}: not available for {dst.suffix} ({_reason(e)})") from None
        video_out.width, video_out.height, video_out.pix_fmt = width, height, pixel_format
        if "vpx" in codec:
            video_out.options = {**video_out.options, "b": "0"}  # constant quality (--crf) mode
        audio_out = None
        if audio_mode == "copy":
            audio_out = output.add_stream_from_template(audio_in)
        elif audio_mode == "encode":
            encoder_name = AUDIO_REENCODE.get(container_format, "aac")
            # Opus encodes at 48 kHz only; PyAV resamples the decoded audio to what the encoder takes.
            audio_out = output.add_stream(encoder_name, rate=48000 if encoder_name == "libopus"
                                          else audio_in.codec_context.sample_rate)
        written = {"frames": 0}

        def mux_audio() -> None:
            while True:
                try:
                    item = audio_items.get_nowait()
                except queue.Empty:
                    return
                if audio_mode == "copy":
                    item.stream = audio_out
                    output.mux(item)
                else:
                    item.pts = None
                    output.mux(audio_out.encode(item))

        def encode() -> None:
            while True:
                item = writes.get()
                mux_audio()
                if item is _END:
                    break
                for pixels in item:
                    frame = av.VideoFrame.from_ndarray(
                        np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels, format="rgb24")
                    frame.pts = written["frames"]
                    frame.time_base = 1 / Fraction(rate)
                    output.mux(video_out.encode(frame))
                    written["frames"] += 1
            output.mux(video_out.encode())
            mux_audio()  # the decoder has finished: this is the rest
            if audio_mode == "encode":
                output.mux(audio_out.encode())

        encoder = _Worker(encode, "video-encode")
        encoder.start()
        meter = FlickerMeter()
        bar = tqdm(total=total, desc=f"video {src.name}", unit="frame", dynamic_ncols=True, disable=not show_bar)
        statistics = None
        if temporal_statistics > 1:
            from ..models.norm import FrameStatistics

            statistics = FrameStatistics(temporal_statistics)
        done, pending, ended = 0, [first], False
        try:
            while not ended:
                while len(pending) < batch_size:
                    item = frames.get()
                    if item is _END:
                        ended = True
                        break
                    pending.append(item)
                if pending:
                    results = translator.translate_frames(pending, direction=direction, batch_size=batch_size,
                                                          statistics=statistics, tile=tile)
                    for source_frame, result in zip(pending, results):
                        meter.add(source_frame, result)
                    _put(writes, results, encoder)
                    done += len(pending)
                    bar.update(len(pending))
                    if progress is not None:
                        progress(done, total)
                    pending = []
            _put(writes, _END, encoder)
            encoder.join()
        finally:
            bar.close()
            _stop_decoder(decoder, stop, frames)
            if encoder.is_alive():
                _drain(writes)
                writes.put(_END)
                encoder.join(timeout=30)
        for worker in (decoder, encoder):
            if worker.error is not None:
                raise worker.error
        output.close()
        output = None
        os.replace(part, dst)
        return VideoReport(str(src), written["frames"], Fraction(rate), width, height, codec, pixel_format,
                           _describe_audio(audio_mode, audio_in, audio_out), time.perf_counter() - started,
                           meter.ratio, temporal_statistics)
    except BaseException as e:
        if "output" in locals() and output is not None:
            try:
                output.close()
            except Exception:  # already failing: the first error is the one to report
                pass
        part.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise Img2ImgError(f"{dst}: disk full while writing the video; nothing was left at {dst}") from None
        if isinstance(e, av.error.FFmpegError):
            if getattr(e, "errno", None) == errno.ENOSPC:
                raise Img2ImgError(f"{dst}: disk full while writing the video; nothing was left at {dst}") from None
            raise Img2ImgError(f"{src}: video translation failed ({_reason(e)}); nothing was left at {dst}") from None
        raise
    finally:
        if "decoder" in locals():
            _stop_decoder(decoder, stop, frames)  # before the input closes under it
        source.close()


def _stop_decoder(decoder: _Worker, stop: threading.Event, frames: queue.Queue) -> None:
    stop.set()
    while decoder.is_alive():
        _drain(frames)  # it may be waiting to hand over a frame
        decoder.join(timeout=0.1)


def _put(writes: queue.Queue, item, encoder: _Worker) -> None:
    """Hand an item to the encoder, unless it has died (its error is raised by the caller)."""
    while True:
        if encoder.error is not None or not encoder.is_alive():
            raise encoder.error or Img2ImgError("the video encoder stopped")
        try:
            writes.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _describe_audio(mode: str, audio_in, audio_out) -> str:
    if mode == "copy":
        return f"copied ({audio_in.codec_context.name})"
    if mode == "encode":
        return f"re-encoded ({audio_in.codec_context.name} -> {audio_out.codec_context.name})"
    return "none"


def video_info(path: Path | str) -> dict:
    """Frame count, frame rate, size (upright), duration and audio of a video file, by decoding it."""
    container = _open_input(Path(path))
    try:
        video = container.streams.video[0]
        sizes, count, rotation = set(), 0, 0
        for frame in container.decode(video=0):
            rotation = getattr(frame, "rotation", 0)
            pixels = _upright(frame)
            sizes.add(pixels.shape[1::-1])
            count += 1
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_seconds = float(audio.duration * audio.time_base) if audio is not None and audio.duration else None
        return {"frames": count, "fps": video.average_rate, "sizes": sizes, "rotation": rotation,
                "duration": float(container.duration / 1e6) if container.duration else None,
                "codec": video.codec_context.name, "pixel_format": video.codec_context.pix_fmt,
                "audio": audio.codec_context.name if audio is not None else None, "audio_seconds": audio_seconds}
    finally:
        container.close()

