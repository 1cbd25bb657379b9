"""The source's audio in a video output: copied where it can be, else re-encoded as AAC.

A video output copies the source's audio packets unchanged where its container holds that
codec, and, in MP4 / MOV, where it is not raw PCM. MP4, MOV and MKV cannot hold every codec a
camera records: G.711 (``pcm_mulaw``, ``pcm_alaw``) goes into none of MP4 and MKV, IMA ADPCM
into none of the three, FLAC or Opus not into MOV; and PCM copied into MP4 becomes ISO
``ipcm``, which browsers, QuickTime and Windows' players do not play. NVR / DVR AVI exports
carry exactly these, and a batch writes AVI sources as MP4. Such audio is decoded and encoded
as AAC (FFmpeg's own ``aac`` encoder; 64 kbit/s a channel, less at low sample rates) at the
source's sample rate where AAC has it (else the next one up), mono or stereo.

The AAC keeps the timeline a copy would have had: each source packet's samples start at the
packet's time less the output's zero (the sink leaves out the packets a copy leaves out), and
the encoder's frames carry those times, so that the sound stays in step with the pictures in
a ``--start`` range and in each ``--segment`` piece. Packets that follow each other within
``SNAP_S`` are joined sample to sample; a gap in the source's sound is filled with silence (up
to ``MAX_FILL_S``; a longer one leaves a gap in the output's timestamps as well), and sound
that overlaps what was written already (timestamps that went back) is cut off where it does.

The sink calls ``encode`` from its writer thread. Each transcoder decodes with a decoder of its
own, made from the source stream's parameters (the block size of ADPCM included): the source
never decodes its audio, but another output, or another ``--segment`` piece, decodes the same
packets with its own.
"""
from __future__ import annotations

import io
import logging
from fractions import Fraction
from typing import Any

import av
import numpy as np

log = logging.getLogger(__name__)

AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
AAC_FRAME = 1024  # samples in an AAC-LC frame
BITS_PER_CHANNEL = 64_000  # 64 kbit/s mono, 128 kbit/s stereo
SNAP_S = 0.05  # a packet starting this close to where the sound before it ends follows it sample to sample
MAX_FILL_S = 10.0  # a longer gap in the source's sound is a jump in the output's timestamps, not silence
CHECK_PACKETS = 8  # how many packets ``undecodable`` tries before saying the audio cannot be decoded
_KINDS = {".mp4": "MP4", ".m4v": "MP4", ".mov": "MOV", ".mkv": "MKV"}


def codec_name(stream: Any) -> str:
    """The codec's name as FFmpeg's tools say it (``mp3``, not the decoder's ``mp3float``)."""
    ctx = stream.codec_context
    codec = getattr(ctx, "codec", None)
    return getattr(codec, "canonical_name", None) or ctx.name


def why_not_copied(suffix: str, format_name: str, stream: Any, container_options: dict | None = None) -> str | None:
    """None where a ``suffix`` output (FFmpeg format ``format_name``) can take ``stream``'s
    packets as they are; otherwise why not, for the log. Whether the container takes the codec
    is asked by writing a header with it into memory: FFmpeg's list of the codecs a format
    holds says yes to FLAC in MOV, which the header then refuses."""
    kind = _KINDS.get(suffix.lower(), suffix.lstrip(".").upper())
    codec = codec_name(stream)
    test = None
    try:
        test = av.open(io.BytesIO(), "w", format=format_name, container_options=container_options or None)
        test.add_stream_from_template(stream)
        test.start_encoding()
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        return f"{kind} cannot hold {codec}" + ("" if "does not support" in str(exc) else f" ({exc})")
    finally:
        if test is not None:
            try:
                test.close()
            except (av.error.FFmpegError, ValueError, OSError) as exc:
                log.debug("closing the test header for %s in %s: %s", codec, kind, exc)
    if kind in ("MP4", "MOV") and codec.startswith("pcm_"):  # G.711 too: MOV holds it
        return f"{codec} is raw PCM, which browsers and most players do not play in {kind}"
    return None


def aac_rate(rate: int) -> int:
    """``rate`` where AAC has it, else the next one up (7350 Hz, which few players know, only
    as itself; the highest for rates above them all; 48 kHz for a rate not known)."""
    rates = sorted(getattr(av.Codec("aac", "w"), "audio_rates", None) or AAC_RATES)
    if rate <= 0:
        return 48000
    if rate in rates:
        return rate
    return next((r for r in rates if r >= rate and r != 7350), rates[-1])


def _decoder(stream: Any):
    """A decoder of its own for ``stream``'s packets, with all the stream's parameters.

    PyAV offers no copy of a codec context, nor a way to read the block size (ADPCM) and bits
    per sample a decoder needs from the stream; a stream added to an output container from a
    template gets them all (``avcodec_parameters``) in a context made for the template's
    codec, its decoder. The ``null`` muxer's container is never written. Should a PyAV make
    that context an encoder's, a decoder is made from the parameters PyAV shows (which
    decodes PCM, G.711 and most compressed codecs, though not ADPCM)."""
    holder = av.open(io.BytesIO(), "w", format="null")
    ctx = holder.add_stream_from_template(stream).codec_context
    if not ctx.is_decoder:
        source = stream.codec_context
        ctx = av.CodecContext.create(source.name, "r")
        ctx.sample_rate = source.sample_rate
        ctx.layout = source.layout
        if source.extradata:
            ctx.extradata = source.extradata
    ctx.open(strict=False)
    return ctx, holder


def undecodable(stream: Any, packets: list[Any]) -> str | None:
    """Why ``stream``'s audio cannot be decoded, judged by its first packets (a decoder of its
    own: the transcoder's starts afresh); None when one of them decodes, or none is given."""
    tried = [p for p in packets if p.size][:CHECK_PACKETS]
    if not tried:
        return None
    try:
        ctx, _holder = _decoder(stream)
    except (av.error.FFmpegError, ValueError) as exc:
        return str(exc)
    error = None
    for packet in tried:
        try:
            ctx.decode(packet)
            return None
        except (av.error.FFmpegError, ValueError) as exc:
            error = exc
    return f"none of its first {len(tried)} packets decodes: {error}"


class AacTranscoder:
    """Decode a source stream's audio packets, place their samples on the output's timeline
    and encode them as AAC into a stream of ``container`` (``self.stream``, added here).

    Raises ``av.error.FFmpegError`` or ``ValueError`` (before adding the stream) when this
    FFmpeg has no AAC encoder or no decoder for the source's codec."""

    def __init__(self, container: Any, source_stream: Any):
        av.Codec("aac", "w")  # UnknownCodecError (a ValueError) where FFmpeg was built without it
        self._decoder, self._holder = _decoder(source_stream)
        source = source_stream.codec_context
        self.source_rate = source.sample_rate or self._decoder.sample_rate
        self.description = f"{codec_name(source_stream)} {self.source_rate} Hz" if self.source_rate else codec_name(source_stream)
        self.rate = aac_rate(self.source_rate)
        channels = source.channels or 1
        self.layout = "mono" if channels == 1 else "stereo"  # more channels are mixed down to two
        stream = container.add_stream("aac", rate=self.rate)
        stream.layout = self.layout
        # AAC-LC carries at most 6144 bits per channel and frame (48 kbit/s a channel at 8 kHz):
        # below 16 kHz, 4 bits a sample (32 kbit/s at 8 kHz, G.711's 64 for better than its sound)
        stream.bit_rate = min(BITS_PER_CHANNEL, 4 * self.rate) * (1 if channels == 1 else 2)
        stream.time_base = stream.codec_context.time_base = Fraction(1, self.rate)
        self.stream = stream
        self._convert = None  # to float planar in the output's layout, at the source's rate
        self._convert_key = None
        self._resample = None  # to the output's rate, where it differs
        self._in_rate = None
        self._next_t: float | None = None  # the output's time (s) where the source's next sample belongs
        self._pts = 0  # the next AAC frame's first sample, in the output's samples
        self._buffer: list[np.ndarray] = []  # samples at the output's rate not yet in an AAC frame
        self._buffered = 0
        self.gaps_filled = 0
        self.jumps = 0
        self.overlaps = 0

    # --- decoding --------------------------------------------------------------------------------
    def prime(self, packet: Any) -> None:
        """Decode a packet that is left out (before the first frame) for its effect on the
        decoder only: codecs that carry state from packet to packet start the next one right."""
        try:
            self._decoder.decode(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            log.debug("audio %s: a left-out packet did not decode: %s", self.description, exc)

    def encode(self, packet: Any, zero: float) -> list[Any]:
        """The AAC packets ready after ``packet`` (source time ``zero`` is the output's 0).
        Raises ``av.error.FFmpegError`` / ``ValueError`` when it does not decode."""
        t = float(packet.pts * packet.time_base) - zero if packet.pts is not None and packet.time_base else None
        out: list[Any] = []
        for k, frame in enumerate(self._decoder.decode(packet)):
            out += self._place(self._planar(frame), frame.sample_rate or self.source_rate, t if k == 0 else None)
        return out

    def _planar(self, frame: Any) -> np.ndarray:
        """The frame's samples as float32, one row per output channel."""
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self._convert_key:  # the first frame, or the source's format changed midway
            self._convert, self._convert_key = av.AudioResampler(format="fltp", layout=self.layout, rate=frame.sample_rate), key
        frame.pts = None  # placed by the packet's time here, not by the converter
        parts = [f.to_ndarray() for f in self._convert.resample(frame)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((1 if self.layout == "mono" else 2, 0), np.float32)

    # --- the timeline ----------------------------------------------------------------------------
    def _place(self, samples: np.ndarray, rate: int, t: float | None) -> list[Any]:
        """Append ``samples`` (at ``rate``) where time ``t`` says (None: right after the last)."""
        out: list[Any] = []
        if rate != self._in_rate:
            self._drain_resampler()
            self._in_rate = rate
            self._resample = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate) if rate != self.rate else None
        n = samples.shape[1]
        if self._next_t is None:  # the first sound: the first AAC frame starts with it
            self._next_t = t if t is not None else 0.0
            self._pts = round(self._next_t * self.rate)
        elif t is not None and t - self._next_t > SNAP_S:
            if t - self._next_t <= MAX_FILL_S:  # a gap in the source's sound: silence
                self.gaps_filled += 1
                fill = round((t - self._next_t) * rate)
                samples = np.concatenate([np.zeros((samples.shape[0], fill), np.float32), samples], axis=1)
            else:  # a long one: the output's timestamps jump too
                self.jumps += 1
                self._drain_resampler()
                out += self._emit(pad=True)
                self._next_t = t
                self._pts = max(self._pts, round(t * self.rate))
        elif t is not None and self._next_t - t > SNAP_S:  # timestamps went back: what was written stays
            self.overlaps += 1
            samples = samples[:, min(n, round((self._next_t - t) * rate)):]
        self._next_t += samples.shape[1] / rate
        if samples.shape[1]:
            self._append(samples, rate)
        return out + self._emit()

    def _append(self, samples: np.ndarray, rate: int) -> None:
        if self._resample is None:
            self._keep(samples)
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self.layout)
        frame.sample_rate = rate
        for f in self._resample.resample(frame):
            self._keep(f.to_ndarray())

    def _keep(self, samples: np.ndarray) -> None:
        if samples.shape[1]:
            self._buffer.append(samples)
            self._buffered += samples.shape[1]

    def _drain_resampler(self) -> None:
        """Buffer what the rate converter holds (its filter's delay); a new one follows."""
        if self._resample is not None:
            for f in self._resample.resample(None):
                self._keep(f.to_ndarray())
            self._resample = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)

    def _emit(self, pad: bool = False, last: bool = False) -> list[Any]:
        """Encode the buffered samples in AAC frames; what is left of a frame waits for more
        (``pad``: completed with silence, before a jump; ``last``: as a shorter last frame)."""
        out: list[Any] = []
        if not self._buffered:
            return out
        data = np.concatenate(self._buffer, axis=1) if len(self._buffer) > 1 else self._buffer[0]
        whole = data.shape[1] - data.shape[1] % AAC_FRAME
        if pad and whole < data.shape[1]:
            data = np.concatenate([data, np.zeros((data.shape[0], AAC_FRAME - data.shape[1] % AAC_FRAME), np.float32)], axis=1)
            whole = data.shape[1]
        elif last:
            whole = data.shape[1]
        for start in range(0, whole, AAC_FRAME):
            out += self._encode_frame(data[:, start:start + AAC_FRAME])
        rest = data[:, whole:]
        self._buffer, self._buffered = ([rest], rest.shape[1]) if rest.shape[1] else ([], 0)
        return out

    def _encode_frame(self, samples: np.ndarray) -> list[Any]:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self.layout)
        frame.sample_rate = self.rate
        frame.pts, frame.time_base = self._pts, Fraction(1, self.rate)
        self._pts += samples.shape[1]
        return list(self.stream.encode(frame))

    def flush(self) -> list[Any]:
        """The last AAC packets: what the converter and the frame in progress hold, then the encoder's."""
        self._drain_resampler()
        self._resample = None
        out = self._emit(last=True)
        out += list(self.stream.encode(None))
        return out
