"""A video file through PyAV: H.264 (libx264), yuv420p, the source's timestamps and audio.

Every frame keeps its source timestamp (variable frame rates stay variable), less the first
frame's, so that the output starts at 0 as FFmpeg's do (a clip cut from 600 s into a stream
starts at 0, not at 600 s); the audio packets of every audio track of the source are copied
unchanged but for the same shift (audio from before the first frame is then left out). Audio the container cannot hold
(G.711 or ADPCM in .mp4, FLAC or Opus in .mov), and raw PCM in .mp4 / .mov, which most players
do not play there, is encoded as AAC on the same timeline instead (``nirvision.io.audio``);
where that fails too (no AAC encoder, audio that does not decode) the output is video only,
with one warning. The video stream is created at the first frame, sized to it (rounded up to
even, as yuv420p needs) with the source's pixel aspect ratio, and the header written at once;
audio the header is refused with is dropped then (the container opened again without it).
A later frame of another size is scaled to the stream's
size, since one H.264 stream has one size. MP4 / MOV hold a frame's duration in 31 bits of the
track's clock (6.6 h at MPEG-TS's 90 kHz): across a longer gap (a motion-triggered recording's
night) the frame before it is written again within the gap, so that every frame keeps its time. The container's tags (``nirvision.io.tags``) keep a
recorded source's title, location and the like and its creation time, shifted to the output's
first frame (a live source's: when that frame was read), and say that the colours are predicted.
``close()`` flushes the encoder and writes the container's index, so the file plays after an
end, an error or a signal; after a failed write (disk full) it removes the partial file, except
a live recording's (below), which plays up to the failure.

A live source's recording must also survive what ``close()`` never sees (the process killed,
the power gone): an ordinary MP4 is unreadable without its index, written last. So for live
sources MP4 / MOV are written fragmented (an index every second, the movie header first) and
Matroska in one-second clusters, each flushed to the file as it is complete: a killed recording
plays up to its last second or so.
"""
from __future__ import annotations

import errno
import logging
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..errors import InputError, OutputFull
from .output_lock import OutputClaim
from .audio import AacTranscoder, codec_name, undecodable, why_not_copied
from .base import Frame, Sink, SourceInfo
from .redact import redact_text, redact_url, url_secrets
from .tags import output_tags, unkept

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v"}
# FFmpeg's codes (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic)
COLORSPACE_BT601, RANGE_LIMITED, PRIMARIES_BT709, TRC_BT709 = 6, 1, 1, 1
# x264's presets, fastest first. Where inference runs on the CPU the encoder takes cores from it:
# lite at 640x480 on 2 cores (session 8, the engine with ONNX Runtime x2) ran 24.0-24.5 FPS with
# veryfast, 25.0-25.5 with superfast and 28.0-28.6 with ultrafast, files 1.2x and 1.8x larger.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def check_preset(preset: str) -> None:
    """InputError unless ``preset`` is one of x264's (``--preset``)."""
    if preset not in X264_PRESETS:
        raise InputError(f"--preset {preset!r}: expected one of: {', '.join(X264_PRESETS)}")
# a live recording is written in pieces of this many seconds, each readable once on disk
LIVE_FLUSH_SECONDS = 1
_TAGS_SAID: set[tuple[str, tuple[str, ...]]] = set()  # (suffix, lost tags) warned about already


def crash_safe_options(suffix: str) -> dict[str, str]:
    """Container options that keep a recording readable up to its last piece when the process
    dies without closing it (FFmpeg's mov and matroska muxers)."""
    options = {"flush_packets": "1"}
    if suffix.lower() == ".mkv":
        options["cluster_time_limit"] = str(LIVE_FLUSH_SECONDS * 1000)  # ms
    else:  # .mp4, .m4v, .mov: fragments (moof + mdat) after a header without samples
        options["movflags"] = "+frag_keyframe+empty_moov+default_base_moof"
        options["frag_duration"] = str(LIVE_FLUSH_SECONDS * 1_000_000)  # us
    return options


def prepare_output_path(path: Path, what: str, suffixes=VIDEO_SUFFIXES) -> None:
    """Create the parent folder; an InputError naming ``path`` when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {redact_url(str(path))}: cannot create its folder ({redact_text(exc.strerror or exc)}); "
                         "expected a writable path") from None
    if path.is_dir():
        raise InputError(f"{what} {redact_url(str(path))}: is a folder; expected a file name ending in {', '.join(sorted(suffixes))}")


# MP4 / MOV keep a frame's duration, and how much later it is shown than decoded, in 32 bits of
# the track's clock; FFmpeg's muxer refuses either past 2^31 - 1 ticks ("patches welcome"; 6.6 h
# at MPEG-TS's 90 kHz). With B-frames a frame is decoded up to a few frames before it is shown:
# a gap is split so that as many intervals in a row as x264's B-frames (+ 2) stay within the limit
MOV_MAX_STEP = 2**31 - 1
X264_BFRAMES = {"ultrafast": 0, "veryslow": 8}  # the presets' B-frames; the others' 3
MOV_SUFFIXES = {".mp4", ".m4v", ".mov"}


class AudioTrack:
    """One of the source's audio streams in the output: copied (``codec`` "copy") or encoded as
    AAC (``transcoder``; ``codec`` "aac")."""

    def __init__(self, source: Any, stream: Any, codec: str, transcoder: AacTranscoder | None = None):
        self.source = source  # the source's stream; its index names it (a file opened again has new stream objects)
        self.stream = stream
        self.codec = codec
        self.transcoder = transcoder
        self.last: float | None = None  # the source's time (s) of the latest packet copied


class VideoSink(Sink):
    """Write RGB frames as H.264 to ``path`` (.mp4, .mkv, .mov)."""

    def __init__(self, path: str | Path, info: SourceInfo, side_by_side: bool = False, crf: int = 20, preset: str = "veryfast", audio: bool = True,
                 threads: int | None = None, said: set | None = None):
        self.path = Path(path)
        self.said = set() if said is None else said  # what was said once for the whole output (a --segment sink shares it with its pieces)
        self.description = str(self.path)
        self.info = info
        self.tags: dict[str, str] = {}  # the container's tags, set at the first frame (nirvision.io.tags)
        self.side_by_side = side_by_side
        self.live = info.live
        self.fps = info.fps or Fraction(25)
        self.time_base = info.time_base or 1 / self.fps
        if preset not in X264_PRESETS:
            raise InputError(f"output {redact_url(str(self.path))}: x264 preset {preset!r} unknown; expected one of: {', '.join(X264_PRESETS)}")
        self.options = {"crf": str(int(crf)), "preset": preset}
        if info.live:
            self.options["tune"] = "zerolatency"
        if threads:  # x264's own threads; one when inference already keeps the CPU busy
            self.options["threads"] = str(int(threads))
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"output {redact_url(str(self.path))}: unknown video type; expected a file ending in {', '.join(sorted(VIDEO_SUFFIXES))}")
        prepare_output_path(self.path, "output")
        self._claim = OutputClaim(self.path)  # OutputBusy while another run writes this file
        # every audio track of the source (a second microphone, a commentary), each copied or encoded as AAC
        self.audio_ins = ([*(info.audio_streams or ([info.audio_stream] if info.audio_stream is not None else []))] if audio else [])
        self.container_options = crash_safe_options(self.path.suffix) if info.live else {}
        try:
            self.container = self._open_container()
        except BaseException:
            self._claim.release()
            raise
        self.tracks: list[AudioTrack] = []
        for stream in self.audio_ins:
            self._add_audio(stream)
        self.stream = None
        self.size: tuple[int, int] | None = None  # (h, w) of the encoded stream
        self._audio_backlog: list[Any] = []
        self._first_pts: int | None = None  # the first frame's timestamp: the output's zero
        self._last_pts = None
        self._intervals: deque[int] = deque(maxlen=15)  # the recent frames' intervals: a packet's duration
        self._resized_from: set[tuple[int, int]] = set()
        self._longest_step: int | None = None  # MP4 / MOV: the longest a frame may last (ticks of time_base), set with the header
        self._held: tuple[np.ndarray, int] | None = None  # (I420, pts) of the latest frame: repeated within a gap too long for one
        self.frames = 0
        self.repeated = 0  # frames written again within such gaps
        self.audio_overlaps = 0  # copied packets left out: they start before the last one written (after the source's clock went back)
        self.audio_packets = 0  # the source's audio packets written (copied, or decoded into the AAC)
        self.audio_skipped = 0  # ... not written: refused by the muxer, or not decodable; AAC packets the muxer refused
        self.audio_before_video = 0  # packets left out: they start before the first frame (the output's 0)
        self.broken = False  # a write failed: close() removes the partial file
        self._closed = False

    @property
    def encoder(self) -> str:
        """What encodes this output, for reports: codec, preset, quality and threads."""
        threads = self.options.get("threads")
        return f"libx264 {self.options['preset']} crf {self.options['crf']}" + (f", {threads} thread{'s' if threads != '1' else ''}" if threads else "")

    @property
    def audio_in(self) -> Any:
        """The source's first audio stream (None: none, or audio not asked for)."""
        return self.audio_ins[0] if self.audio_ins else None

    @property
    def audio_out(self) -> Any:
        """The output's first audio stream, None where it has no sound."""
        return self.tracks[0].stream if self.tracks else None

    @property
    def audio_codec(self) -> str | None:
        """How the output's first audio track is made: "copy" or "aac" (None: no sound)."""
        return self.tracks[0].codec if self.tracks else None

    def _which(self, stream: Any) -> str:
        """The source's audio stream, as messages name it (which track, where it has several)."""
        if len(self.audio_ins) < 2:
            return "the source's audio"
        return f"the source's audio track #{stream.index} ({codec_name(stream)})"

    def _add_audio(self, source: Any) -> None:
        """A source audio stream: copied where the container holds it and players play it
        there, else encoded as AAC (``nirvision.io.audio``); left out where neither works."""
        why = why_not_copied(self.path.suffix, self.container.format.name, source, self.container_options)
        if why is None:
            try:
                self.tracks.append(AudioTrack(source, self.container.add_stream_from_template(source), "copy"))
                return
            except (av.error.FFmpegError, ValueError) as exc:
                why = f"cannot copy it ({exc})"
        try:
            transcoder = AacTranscoder(self.container, source)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            only = "writing video only" if len(self.audio_ins) < 2 else "leaving that track out"
            self._say_once(logging.WARNING, "output %s: cannot copy %s (%s) nor encode it as AAC (%s); %s",
                           self.path, self._which(source), why, exc, only)
            return
        self.tracks.append(AudioTrack(source, transcoder.stream, "aac", transcoder))
        self._say_once(logging.INFO, "output %s: audio %s -> AAC %d Hz %s: %s", self.path, transcoder.description,
                       transcoder.rate, transcoder.layout, why)

    def _say_once(self, level: int, message: str, *args) -> None:
        """Log once for the whole output (a --segment sink's pieces share ``said``)."""
        said = (message, *args[1:])
        if said not in self.said:
            self.said.add(said)
            log.log(level, message, *args)

    def _open_container(self):
        try:
            return av.open(str(self.path), "w", container_options=self.container_options or None)
        except (av.error.FFmpegError, OSError) as exc:
            reason = redact_text(getattr(exc, "strerror", None) or exc, url_secrets(str(self.path)))
            raise InputError(f"output {redact_url(str(self.path))}: cannot be written ({reason}); expected a writable path") from None

    def _failed(self, exc: BaseException, what: str, at: float | None = None) -> InputError:
        """Mark the sink broken (``close()`` then removes the file); the error to raise. A file
        error (OSError: the disk full, a path not writable) names the disk; anything else is the
        muxer refusing what it was given (``at``: the output's time of the packet, s)."""
        self.broken = True
        reason = redact_text(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__, url_secrets(str(self.path)))
        where = redact_url(str(self.path))
        if isinstance(exc, OSError):
            kind = OutputFull if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else InputError
            return kind(f"output {where}: {what} failed ({reason}); expected a writable path with free space")
        when = f" at {at:.3f} s" if at is not None else ""
        return InputError(f"output {where}: {what} failed ({reason}): the {self.container.format.name} muxer refused the data{when}, "
                          f"not a disk problem; expected data that {self.path.suffix.lower()} can hold (.mkv holds more)")

    def _add_video(self, h: int, w: int) -> None:
        stream = self.container.add_stream("libx264", rate=self.fps, options=self.options)
        stream.height, stream.width = h, w
        stream.pix_fmt = "yuv420p"
        if self.info.sample_aspect_ratio:  # non-square pixels (a side-by-side image has the same ones)
            stream.codec_context.sample_aspect_ratio = self.info.sample_aspect_ratio
        # say how the pictures were made (BT.601 matrix, limited range: ``write``'s I420; sRGB / BT.709
        # primaries and transfer): untagged, players take HD sizes for BT.709 and shift the colours
        cc = stream.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = COLORSPACE_BT601, RANGE_LIMITED, PRIMARIES_BT709, TRC_BT709
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        self.stream = stream

    def _open_stream(self, h: int, w: int) -> None:
        """Add the video stream, sized to the first frame, and write the header: every stream
        is known now. Without the audio when the container refuses it (FFmpeg only says so here)."""
        self.size = (h + h % 2, w + w % 2)
        said = ("padded", w, h)
        if (h % 2 or w % 2) and said not in self.said:  # one message per output, not per --segment piece
            self.said.add(said)
            log.warning("output %s: frames are %dx%d, padded to %dx%d by repeating the last %s (H.264 in yuv420p needs an even size)",
                        self.path, w, h, self.size[1], self.size[0], " and ".join(x for x, odd in (("column", w % 2), ("row", h % 2)) if odd))
        self._add_video(*self.size)
        self.container.metadata.update(self.tags)
        # audio that will not decode: known from the packets demuxed before the first frame
        undecoded = {t.source.index: why for t in self.tracks if t.transcoder is not None
                     and (why := undecodable(t.source, [p for p in self._audio_backlog if p.stream_index == t.source.index])) is not None}
        refused = None
        if not undecoded:
            try:
                self.container.start_encoding()
                self._mov_limit()
                return
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                if not self.tracks:
                    raise self._failed(exc, "writing the header") from None
                refused = exc
        # the header with the audio failed, or some audio does not decode: once more without it (nothing was muxed yet)
        self._close_container()
        try:
            self.container = self._open_container()
        except InputError:
            self.broken = True
            raise
        kept = [t.source for t in self.tracks if refused is None and t.source.index not in undecoded]
        self.tracks = []
        for source in kept:
            self._add_audio(source)
        self._audio_backlog = [p for p in self._audio_backlog if any(p.stream_index == t.source.index for t in self.tracks)]
        self._add_video(*self.size)
        self.container.metadata.update(self.tags)
        try:
            self.container.start_encoding()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise self._failed(exc, "writing the header") from None
        self._mov_limit()
        only = "writing video only" if not self.tracks else "leaving that track out"
        for source in self.audio_ins:
            if source.index in undecoded:
                codec = getattr(getattr(source, "codec_context", None), "name", "?")
                track = f"the source's {codec} audio" if len(self.audio_ins) < 2 else f"the source's audio track #{source.index} ({codec})"
                self._say_once(logging.WARNING, "output %s: cannot encode %s as AAC: it does not decode (%s); %s",
                               self.path, track, undecoded[source.index], only)
        if refused is not None:
            reason = getattr(refused, "strerror", None) or refused
            codecs = ", ".join(getattr(getattr(s, "codec_context", None), "name", "?") for s in self.audio_ins)
            self._say_once(logging.WARNING, "output %s: the container cannot hold the source's %s audio (%s); writing video only", self.path, codecs, reason)

    def _mov_limit(self) -> None:
        """MP4 / MOV: the longest a frame may last, in ticks of ``time_base`` (the header set the track's clock)."""
        if self.path.suffix.lower() in MOV_SUFFIXES and self.stream is not None and self.stream.time_base:
            bframes = 0 if self.options.get("tune") == "zerolatency" else X264_BFRAMES.get(self.options["preset"], 3)
            self._longest_step = max(1, int(MOV_MAX_STEP * Fraction(self.stream.time_base) / Fraction(self.time_base)) // (bframes + 2))

    def _close_container(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            log.debug("output %s: closing after a failed write: %s", self.path, exc)

    def _frame_ticks(self) -> int:
        """A picture's duration in the stream's time base: the recent frames' usual interval (a
        gap in a motion-triggered recording does not count), else the nominal rate's."""
        if self._intervals:
            return max(1, int(np.median(self._intervals)))
        return max(1, int(round(1 / (self.fps * self.time_base))))

    def _mux(self, packet) -> None:
        # every picture says how long it lasts: without it MP4 gives the last one the average of
        # the whole file (a recording with an hour's gap ended on a 10-minute still)
        if self.stream is not None and packet.stream is self.stream and not packet.duration:
            packet.duration = self._frame_ticks()
        at = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
        try:
            self.container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise self._failed(exc, "writing", at) from None

    def _fit(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.size is None:
            self._open_stream(h, w)
        sh, sw = self.size
        if (h, w) == (sh, sw):
            return image
        if h + h % 2 == sh and w + w % 2 == sw:  # odd size: repeat the last row / column
            return np.pad(image, ((0, sh - h), (0, sw - w), (0, 0)), mode="edge")
        if (h, w) not in self._resized_from:
            self._resized_from.add((h, w))
            log.warning("output %s: frames changed size to %dx%d; scaling them to the stream's %dx%d", self.path, w, h, sw, sh)
        return cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)

    def _pts(self, frame: Frame) -> int:
        if frame.pts is not None and frame.time_base is not None:
            pts = frame.pts if frame.time_base == self.time_base else int(round(frame.pts * frame.time_base / self.time_base))
        else:
            pts = int(round(frame.index / (self.fps * self.time_base)))
        if self._first_pts is None:
            self._first_pts = pts
        pts -= self._first_pts
        if self._last_pts is not None and pts <= self._last_pts:
            log.debug("output %s: timestamp %d not after %d; using %d", self.path, pts, self._last_pts, self._last_pts + 1)
            pts = self._last_pts + 1
        if self._last_pts is not None:
            self._intervals.append(pts - self._last_pts)
        self._last_pts = pts
        return pts

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self.broken:  # the error was raised already; the run is ending
            return
        if self.size is None:  # the first frame: the header is written now, with the tags
            self.tags = output_tags(self.info, frame.time, frame.t_read)
        image = self._fit(image)  # even height and width, as yuv420p needs
        # OpenCV's RGB -> I420 (BT.601, limited range: what FFmpeg's scaler does by default)
        # costs 0.9-1.0 ms of CPU for a 640x480 frame where handing the encoder rgb24 costs
        # 2.2-2.9 ms: CPU that inference needs on small machines (decoded, both give the same
        # colours; tests/io/test_sinks.py checks them).
        yuv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)
        pts = self._pts(frame)
        if self._held is not None and self._longest_step and pts - self._held[1] > self._longest_step:
            self._bridge(pts)
        self._encode(yuv, pts)
        if self._longest_step:
            self._held = (yuv, pts)
        self.frames += 1
        if self._audio_backlog:
            backlog, self._audio_backlog = self._audio_backlog, []
            self.write_audio(backlog)

    def _encode(self, yuv: np.ndarray, pts: int) -> None:
        vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        vf.pts = pts
        vf.time_base = self.time_base
        for packet in self.stream.encode(vf):
            self._mux(packet)

    def _bridge(self, pts: int) -> None:
        """MP4 / MOV: the frame before a gap longer than a frame may last there, written again
        within it (shown all through the gap anyway), so that the frame after keeps its time."""
        yuv, before = self._held
        pieces = -(-(pts - before) // self._longest_step)
        for k in range(1, pieces):
            self._encode(yuv, before + (pts - before) * k // pieces)
        self.repeated += pieces - 1
        tb = float(self.time_base)
        self._say_once(logging.WARNING, "output %s: the gap of %.1f h between the frames at %.3f s and %.3f s is longer than %s holds between "
                       "two frames at this clock (%.1f h with the encoder's B-frames); the frame before it is written again %d time(s) within it, "
                       "so that the frames keep their times", self.path, (pts - before) * tb / 3600, before * tb, pts * tb,
                       self.path.suffix.lower(), self._longest_step * tb / 3600, pieces - 1)

    def write_audio(self, packets: list[Any]) -> None:
        if not self.tracks or not packets or self.broken:
            return
        if self._first_pts is None:  # the header needs every stream: hold audio until the first frame
            self._audio_backlog.extend(packets)
            return
        zero = self._first_pts * self.time_base  # the source's time the output's timeline starts at
        tracks = {t.source.index: t for t in self.tracks}
        for packet in packets:
            track = tracks.get(packet.stream_index)
            if track is None:  # a track this output could not take
                continue
            # every video sink gets the same packet objects, and muxing rebases a packet to the
            # stream's time base: each sink shifts its own timestamps and restores the packet's
            source, tb, pts, dts = packet.stream, packet.time_base, packet.pts, packet.dts
            shift = int(round(zero / tb)) if zero and tb else 0
            if shift and pts is not None and pts < shift:
                self.audio_before_video += 1  # sound from before the first picture: the output starts with the picture
                if track.transcoder is not None:
                    track.transcoder.prime(packet)
                continue
            if track.transcoder is not None:
                self._write_aac(track, packet, float(zero))
                continue
            when = dts if dts is not None else pts
            if when is not None and tb and track.last is not None and float(when * tb) <= track.last:
                self.audio_overlaps += 1  # sound that overlaps what was written (the source's clock went back): what was written stays
                continue
            if shift:
                packet.pts = None if pts is None else pts - shift
                packet.dts = None if dts is None else dts - shift
            packet.stream = track.stream
            try:
                self.container.mux(packet)
                self.audio_packets += 1
                track.last = float(when * tb) if when is not None and tb else track.last
            except OSError as exc:  # the file itself (disk full): the same for every packet to come
                raise self._failed(exc, "writing") from None
            except (av.error.FFmpegError, ValueError) as exc:  # this packet (a timestamp the muxer refuses)
                self._audio_not_written(exc)
            finally:
                packet.stream = source
                packet.time_base, packet.pts, packet.dts = tb, pts, dts

    def _audio_not_written(self, exc: BaseException, what: str = "written") -> None:
        self.audio_skipped += 1
        if self.audio_skipped == 1:
            log.warning("output %s: an audio packet could not be %s (%s); skipped", self.path, what, exc)
        else:
            log.debug("output %s: audio packet %d not %s (%s)", self.path, self.audio_skipped, what, exc)

    def _write_aac(self, track: AudioTrack, packet, zero: float) -> None:
        """Decode one source packet into the track's AAC stream (``zero``: the source's time of the output's 0)."""
        try:
            encoded = track.transcoder.encode(packet, zero)
        except (av.error.FFmpegError, ValueError) as exc:  # this packet does not decode
            self._audio_not_written(exc, "decoded")
            return
        self._mux_aac(encoded)
        self.audio_packets += 1

    def _mux_aac(self, packets: list[Any]) -> None:
        for packet in packets:
            try:
                self.container.mux(packet)
            except OSError as exc:
                raise self._failed(exc, "writing") from None
            except (av.error.FFmpegError, ValueError) as exc:
                self._audio_not_written(exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._finish()
        finally:
            self._claim.release()

    def _finish(self) -> None:
        try:
            for track in self.tracks if self.stream is not None and not self.broken else ():
                if track.transcoder is not None:
                    try:  # the AAC frame in progress and the encoder's last packets
                        self._mux_aac(track.transcoder.flush())
                    except (av.error.FFmpegError, ValueError) as exc:
                        self._audio_not_written(exc, "encoded")
            if self.audio_before_video:
                log.info("output %s: left out %d audio packets that start before the first frame", self.path, self.audio_before_video)
            if self.audio_overlaps:
                log.info("output %s: left out %d audio packets that overlap the sound written before them (the source's clock went back)",
                         self.path, self.audio_overlaps)
            if self.tracks and all(t.transcoder is not None for t in self.tracks) and self.audio_skipped and not self.audio_packets:
                log.warning("output %s: none of the source's %d audio packets decoded; the output has no sound", self.path, self.audio_skipped)
            elif self.audio_skipped > 1:
                log.warning("output %s: %d audio packets could not be written and were skipped", self.path, self.audio_skipped)
            if self.stream is not None and not self.broken:
                for packet in self.stream.encode(None):
                    self._mux(packet)
        finally:
            if self.broken and self.container_options and self.frames:
                # a live recording is written in pieces that play on their own: what reached the
                # disk before the failed write is kept (its source cannot be played again)
                self._close_container()
                log.warning("output %s: kept the recording up to the failed write (%d frames written)", self.path, self.frames)
            elif self.broken:  # muxing again after a failed write crashes PyAV: no flush, no index
                self._close_container()
                log.info("output %s: removing the partial file after the failed write", self.path)
                self.path.unlink(missing_ok=True)
            else:
                try:  # a muxer that holds data until the end (MKV's last clusters, MP4's index) writes it now
                    self.container.close()
                except (av.error.FFmpegError, OSError) as exc:
                    error = self._failed(exc, "finishing")
                    if self.container_options and self.frames:
                        log.warning("output %s: kept the recording up to the failed write (%d frames written)", self.path, self.frames)
                    else:
                        log.info("output %s: removing the partial file after the failed write", self.path)
                        self.path.unlink(missing_ok=True)
                    raise error from None
                if self.frames == 0:
                    log.warning("output %s: no frames were written; removing the empty file", self.path)
                    self.path.unlink(missing_ok=True)
                else:
                    self._check_tags()

    def _check_tags(self) -> None:
        """Say (once per kind of file and tags) which of the source's tags the container could not hold."""
        if not self.info.tags:
            return
        try:
            with av.open(str(self.path)) as done:
                lost = unkept(self.tags, done.metadata)
        except (av.error.FFmpegError, OSError) as exc:
            log.debug("output %s: could not read its tags back: %s", self.path, exc)
            return
        said = (self.path.suffix.lower(), tuple(lost))
        if lost and said not in _TAGS_SAID:
            _TAGS_SAID.add(said)
            log.warning("output %s: the source's tags %s cannot be kept in %s (.mkv keeps every tag)", self.path, ", ".join(lost),
                        self.path.suffix.lower())
