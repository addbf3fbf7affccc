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
from typing import Callable, Sequence

import numpy as np
import torch

from ..cancellation import check_stop
from ..config import Direction
from ..errors import Img2ImgError
from ..io.limits import DEFAULT_LIMITS, Limits, over_limit
from ..log import logger
from ..models.norm import FrameStatistics, shared_statistics
from .tiling import AUTO_TILING, Tiling

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


# A frames -> frames callable: consecutive H x W x C uint8 frames of one size in, the
# translations (8-bit grey or RGB) out, one per frame.
FramesFn = Callable[[list[np.ndarray]], list[np.ndarray]]


def audio_mode(audio_in, container_format: str) -> str:
    """How the input's audio reaches the output: "copy" (as it is), "encode" or "none"."""
    if audio_in is None:
        return "none"
    copyable = AUDIO_COPYABLE[container_format]
    return "copy" if copyable is None or audio_in.codec_context.name in copyable else "encode"


class VideoSource:
    """A video file decoded on its own thread: upright RGB frames from `frames()`, and the audio
    (packets to copy, or frames to re-encode, per `audio`) queued for the sink."""

    def __init__(self, src: Path, limits: Limits | None = DEFAULT_LIMITS) -> None:
        self.src = src
        self.limits = limits
        self.container = _open_input(src)
        self.video = self.container.streams.video[0]
        if self.video.codec_context is None:
            self.container.close()
            raise Img2ImgError(f"{src}: its video codec ({self.video.codec_tag or 'unknown'}) cannot be decoded here")
        self.video.thread_type = "AUTO"
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        duration = self.video.duration
        self.total = self.video.frames or (int(float(duration * self.video.time_base) * self.rate) if duration else None)
        if limits is not None:
            problem = self.over(limits)
            if problem:
                self.container.close()
                raise Img2ImgError(f"{src}: {problem}")
        # Audio is small, and may come before the first video frame: never a reason to block.
        self.audio_items: queue.Queue = queue.Queue()
        self._frames: queue.Queue | None = None
        self._stop = threading.Event()
        self._decoder: _Worker | None = None

    def over(self, limits: Limits) -> str | None:
        """What the container's header declares beyond `limits`, before any frame is decoded."""
        width, height = self.video.codec_context.width, self.video.codec_context.height
        seconds = self.container.duration / 1e6 if self.container.duration else None
        if seconds is None and self.video.duration:
            seconds = float(self.video.duration * self.video.time_base)
        return (over_limit(f"its frames ({width}x{height}) have", width * height, "max_video_pixels", limits, " pixels")
                or (over_limit("it lasts", seconds, "max_video_seconds", limits, " s") if seconds else None)
                or (over_limit("it has", self.total, "max_video_frames", limits, " frames") if self.total else None))

    def start(self, audio: str, buffered: int) -> None:
        """Start decoding, holding at most `buffered` frames ahead of the consumer."""
        import av

        self._frames = queue.Queue(maxsize=buffered)
        streams = [self.video] + ([self.audio] if self.audio is not None else [])

        def decode() -> None:
            decoded = 0
            try:
                for packet in self.container.demux(*streams):
                    if self._stop.is_set():
                        return
                    if packet.stream.type == "audio":
                        if audio == "copy" and packet.dts is not None:
                            self.audio_items.put(packet)
                        elif audio == "encode":
                            for frame in packet.decode():
                                self.audio_items.put(frame)
                        continue
                    for frame in packet.decode():
                        decoded += 1
                        self._check_frame(frame, decoded)
                        self._frames.put(_upright(frame))
            except av.error.FFmpegError as e:
                raise Img2ImgError(f"{self.src}: cannot decode video ({_reason(e)})") from None
            finally:
                self._frames.put(_END)

        self._decoder = _Worker(decode, "video-decode")
        self._decoder.start()

    def _check_frame(self, frame, number: int) -> None:
        """Every decoded frame against the limits, not only the header's size: a stream may change
        size mid-way. Refused before the frame is converted, scaled or batched."""
        if self.limits is None:
            return
        problem = over_limit(f"frame {number} ({frame.width}x{frame.height}) has", frame.width * frame.height,
                             "max_video_pixels", self.limits, " pixels")
        if problem:
            raise Img2ImgError(f"{self.src}: {problem}")

    def batches(self, size: int):
        """Lists of up to `size` consecutive frames; an undecodable video raises its error."""
        pending = []
        while True:
            item = self._frames.get()
            if item is _END:
                break
            pending.append(item)
            if len(pending) == size:
                yield pending
                pending = []
        self._decoder.join()
        if self._decoder.error is not None:
            raise self._decoder.error
        if pending:
            yield pending

    def close(self) -> None:
        if self._decoder is not None:
            _stop_decoder(self._decoder, self._stop, self._frames)  # before the input closes under it
        self.container.close()


class VideoSink:
    """A video file written on its own thread, to DST.part, renamed to DST by `finish`."""

    def __init__(self, dst: Path, container_format: str, source: VideoSource, audio: str, width: int, height: int,
                 crf: int, codec: str | None) -> None:
        import av

        self.dst, self.part = dst, dst.with_name(dst.name + ".part")
        self.audio, self.source = audio, source
        self.codec = codec or VIDEO_CODECS.get(container_format, "libx264")
        self.pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.rate = source.rate
        self.output = av.open(str(self.part), "w", format=container_format)
        try:
            self.video = self.output.add_stream(self.codec, rate=self.rate, options={"crf": str(crf)}
                                                if "x26" in self.codec or "vpx" in self.codec else {})
        except (av.error.FFmpegError, ValueError) as e:
            self.output.close()
            self.part.unlink(missing_ok=True)
            raise Img2ImgError(f"--codec {self.codec}: not available for {dst.suffix} ({_reason(e)})") from None
        self.video.width, self.video.height, self.video.pix_fmt = width, height, self.pixel_format
        if "vpx" in self.codec:
            self.video.options = {**self.video.options, "b": "0"}  # constant quality (--crf) mode
        self.audio_out = None
        if audio == "copy":
            self.audio_out = self.output.add_stream_from_template(source.audio)
        elif audio == "encode":
            encoder_name = AUDIO_REENCODE.get(container_format, "aac")
            # Opus encodes at 48 kHz only; PyAV resamples the decoded audio to what the encoder takes.
            self.audio_out = self.output.add_stream(encoder_name, rate=48000 if encoder_name == "libopus"
                                                    else source.audio.codec_context.sample_rate)
        self.frames_written = 0
        self._writes: queue.Queue = queue.Queue(maxsize=8)
        self._encoder = _Worker(self._encode, "video-encode")
        self._encoder.start()

    def _mux_audio(self) -> None:
        while True:
            try:
                item = self.source.audio_items.get_nowait()
            except queue.Empty:
                return
            if self.audio == "copy":
                item.stream = self.audio_out
                self.output.mux(item)
            else:
                item.pts = None
                self.output.mux(self.audio_out.encode(item))

    def _encode(self) -> None:
        import av

        while True:
            item = self._writes.get()
            self._mux_audio()
            if item is _END:
                break
            for pixels in item:
                frame = av.VideoFrame.from_ndarray(
                    np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels, format="rgb24")
                frame.pts = self.frames_written
                frame.time_base = 1 / Fraction(self.rate)
                self.output.mux(self.video.encode(frame))
                self.frames_written += 1
        self.output.mux(self.video.encode())
        self._mux_audio()  # the decoder has finished: this is the rest
        if self.audio == "encode":
            self.output.mux(self.audio_out.encode())

    def write(self, frames: list[np.ndarray]) -> None:
        _put(self._writes, frames, self._encoder)

    def finish(self) -> None:
        """Write what is left, close the file and move it into place."""
        _put(self._writes, _END, self._encoder)
        self._encoder.join()
        if self._encoder.error is not None:
            raise self._encoder.error
        self.output.close()
        os.replace(self.part, self.dst)

    def abort(self) -> None:
        """Stop the encoder and remove the partial file."""
        if self._encoder.is_alive():
            _drain(self._writes)
            self._writes.put(_END)
            self._encoder.join(timeout=30)
        try:
            self.output.close()
        except Exception:  # already failing: the first error is the one to report
            pass
        self.part.unlink(missing_ok=True)

    def describe_audio(self) -> str:
        return _describe_audio(self.audio, self.source.audio, self.audio_out)


def translate_video_frames(translate: FramesFn, src: Path | str, dst: Path | str, *, batch_size: int = 8,
                           crf: int = DEFAULT_CRF, codec: str | None = None, overwrite: bool = False,
                           progress: Callable[[int, int | None], None] | None = None, show_bar: bool = True,
                           temporal_statistics: int = DEFAULT_TEMPORAL_STATISTICS,
                           limits: Limits | None = DEFAULT_LIMITS) -> VideoReport:
    """Video `src` through `translate`, batch by batch, into `dst` (its container from the
    suffix). `progress(done, total)` is called after each batch; `show_bar` draws a tqdm bar in
    frames with frames/s and ETA. `temporal_statistics` is only reported (the window `translate`
    pools its statistics over). `limits` are checked against the container's header first."""
    import av
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    container_format = CONTAINERS.get(dst.suffix.lower())
    if container_format is None:
        raise Img2ImgError(f"{dst}: cannot write {dst.suffix or 'suffix-less'} videos; use one of "
                           f"{', '.join(sorted(CONTAINERS))}")
    if dst.exists() and not overwrite:
        raise Img2ImgError(f"{dst}: exists (use --overwrite to replace it)")
    source = VideoSource(src, limits)
    dst.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sink, bar = None, None
    try:
        audio = audio_mode(source.audio, container_format)
        source.start(audio, buffered=4 * batch_size)
        meter, done = FlickerMeter(), 0
        bar = tqdm(total=source.total, desc=f"video {src.name}", unit="frame", dynamic_ncols=True,
                   disable=not show_bar)
        for frames in source.batches(batch_size):
            check_stop()
            if sink is None:
                height, width = frames[0].shape[:2]
                sink = VideoSink(dst, container_format, source, audio, width, height, crf, codec)
            results = translate(frames)
            for source_frame, result in zip(frames, results):
                meter.add(source_frame, result)
            sink.write(results)
            done += len(frames)
            if limits is not None and done > limits.max_video_frames:  # a header can understate its length
                raise Img2ImgError(f"{src}: {over_limit('it has more than', done, 'max_video_frames', limits, ' frames')}")
            bar.update(len(frames))
            if progress is not None:
                progress(done, source.total)
        if sink is None:
            raise Img2ImgError(f"{src}: no frame could be decoded")
        sink.finish()
        return VideoReport(str(src), sink.frames_written, Fraction(source.rate), width, height, sink.codec,
                           sink.pixel_format, sink.describe_audio(), time.perf_counter() - started, meter.ratio,
                           temporal_statistics)
    except BaseException as e:
        if sink is not None:
            sink.abort()
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise Img2ImgError(f"{dst}: disk full while writing the video; nothing was left at {dst}") from None
        if isinstance(e, av.error.FFmpegError):
            if getattr(e, "errno", None) == errno.ENOSPC:
                raise Img2ImgError(f"{dst}: disk full while writing the video; nothing was left at {dst}") from None
            raise Img2ImgError(f"{src}: video translation failed ({_reason(e)}); nothing was left at {dst}") from None
        raise
    finally:
        if bar is not None:
            bar.close()
        source.close()


@torch.no_grad()
def translate_frames(translator, frames: Sequence[np.ndarray], direction: Direction = "AtoB",
                     batch_size: int = 8, statistics: FrameStatistics | None = None,
                     tiling: Tiling = AUTO_TILING) -> list[np.ndarray]:
    """Consecutive video frames (H x W x C arrays of one size), by a `Translator`. Without `statistics` each frame
    is translated as `translate_pixels` would; with them, by statistics pooled over the frames
    before it (`FrameStatistics`), which takes a second pass in PyTorch. Frames large enough
    to tile are tiled as images are, each by its own pooled tile statistics."""
    height, width = frames[0].shape[:2]
    if statistics is not None and translator.method.codec.user_formats(direction):
        statistics = None  # the method converts frames on their way in and out: per frame
    if statistics is None or translator.tiling_for(width, height, tiling) is not None:
        if statistics is not None and not translator.noted("tiled frames"):
            logger.info(f"frames of {width}x{height} px are tiled: each is normalised by its own tiles' statistics")
        return translator.translate_pixels(list(frames), direction=direction, batch_size=batch_size, tiling=tiling)
    formats = translator.formats(direction)
    net = translator.generator(direction)
    out = []
    for start in range(0, len(frames), batch_size):
        check_stop()
        x = torch.stack([formats.source.encode(translator.pixels_of(f, direction))
                         for f in frames[start:start + batch_size]])
        with shared_statistics(statistics):
            statistics.record(len(x))
            translator.run(net, x)
            statistics.pool()
            y = translator.run(net, x)
        out += [formats.target.decode_tensor(t) for t in y]
    return out


def translate_video(translator, src: Path | str, dst: Path | str, direction: Direction = "AtoB",
                    batch_size: int = 8, temporal_statistics: int = DEFAULT_TEMPORAL_STATISTICS,
                    tiling: Tiling = AUTO_TILING, **options) -> VideoReport:
    """A video file translated by a `Translator` into `dst`, with its frame rate, frame count, size and sound;
    returns its `VideoReport`. Normalisation statistics are pooled over `temporal_statistics`
    frames (1: each frame its own). `options`: those of `translate_video_frames` (crf, codec,
    overwrite, progress, show_bar, limits)."""
    if temporal_statistics < 1:
        raise Img2ImgError(f"--temporal-statistics {temporal_statistics}: a window of at least 1 frame")
    translator.network(direction)
    target = translator.formats(direction).target
    if target.channels not in (1, 3) or target.dtype != "uint8":
        raise Img2ImgError(f"this model writes {target.describe()} images; videos hold 8-bit grey or RGB")
    statistics = FrameStatistics(temporal_statistics) if temporal_statistics > 1 else None

    def translate(frames: list[np.ndarray]) -> list[np.ndarray]:
        return translator.translate_frames(frames, direction=direction, batch_size=batch_size, statistics=statistics,
                                           tiling=tiling)

    return translate_video_frames(translate, src, dst, batch_size=batch_size,
                                  temporal_statistics=temporal_statistics, **options)


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

