"""Audio a video output cannot copy (G.711, ADPCM, PCM from NVR AVI exports; FLAC in .mov) is
encoded as AAC on the timeline a copy would have had; what it can copy is still copied."""
import logging
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.io import open_sink, open_source
from nirvision.runtime.engine import Engine
from tests.io.media import StubBackend, frame_image, make_clip, read_video

PRIMING = 1024  # FFmpeg's AAC encoder starts with one frame of priming, before the output's 0



def mux_pictures(out, vs, n: int) -> None:
    """``n`` 64x48 test pictures at 25 fps through ``vs`` into ``out``, flushed."""
    for i in range(n):
        f = av.VideoFrame.from_ndarray(cv2.cvtColor(frame_image(i, 48, 64), cv2.COLOR_GRAY2RGB), format="rgb24")
        f.pts = i
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode(None):
        out.mux(p)

def chirp(n0: int, n: int, rate: int) -> np.ndarray:
    """Samples ``n0`` .. ``n0 + n`` of a tone rising from 200 Hz by 400 Hz a second: a signal
    that lines up with itself at one shift only (a steady tone lines up every period)."""
    t = (n0 + np.arange(n)) / rate
    return (0.3 * np.sin(2 * np.pi * (200 * t + 200 * t * t))).astype(np.float32)


def make_avi(path, audio_codec: str, rate: int = 8000, seconds: float = 1.6, audio_first: bool = False) -> None:
    """An NVR-like AVI: 64x48 Motion JPEG at 25 fps and ``seconds`` of mono ``chirp`` in
    ``audio_codec`` (``audio_first``: its stream and first packet before the video's)."""
    out = av.open(str(path), "w")
    if audio_first:
        aus = out.add_stream(audio_codec, rate=rate)
    vs = out.add_stream("mjpeg", rate=25)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuvj420p"
    if not audio_first:
        aus = out.add_stream(audio_codec, rate=rate)
    aus.layout = "mono"
    ctx = aus.codec_context
    fmt, size, total = ctx.format.name, ctx.frame_size or 1024, int(round(seconds * rate))
    audio = []
    for n0 in range(0, total, size):
        n = size if ctx.frame_size else min(size, total - n0)  # a fixed-size codec pads its last frame itself
        x = chirp(n0, min(n, total - n0), rate)
        x = np.pad(x, (0, n - len(x)))[None]
        x = {"s16": lambda v: (v * 32767).astype(np.int16), "s32": lambda v: (v * 2**31).astype(np.int32),
             "u8": lambda v: (v * 127 + 128).astype(np.uint8)}.get(fmt.rstrip("p"), lambda v: v)(x)
        frame = av.AudioFrame.from_ndarray(x, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, n0
        audio += aus.encode(frame)
    audio += aus.encode(None)
    if audio_first:
        out.mux(audio[0])
    mux_pictures(out, vs, int(round(seconds * 25)))
    out.mux(audio[1:] if audio_first else audio)
    out.close()


def sound(path) -> tuple[int, np.ndarray]:
    """The first audio stream decoded to float, each frame at its time (silence where there is
    none): the sample rate and the first channel's samples from the file's 0."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        to_float = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = [(round(f.time * rate), g.to_ndarray()[0]) for f in c.decode(stream) for g in to_float.resample(f)]
    x = np.zeros(max(at + len(s) for at, s in parts), np.float32)
    for at, s in parts:
        x[at:at + len(s)] = s
    return rate, x


def audio_span(path) -> tuple[str, int, float, float]:
    """The output's audio: codec, sample rate and the seconds its sound starts and ends at (an
    AAC stream's first packet is the encoder's priming, before 0)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        codec, rate = stream.codec_context.name, stream.codec_context.sample_rate
        packets = [(p.pts, p.duration, p.time_base) for p in c.demux(stream) if p.size]
    (first, _, tb), (last, duration, _) = packets[0], packets[-1]
    start = first * tb + (Fraction(PRIMING, rate) if codec == "aac" else 0)
    return codec, rate, float(start), float((last + duration) * tb)


def best_lag(out: np.ndarray, ref: np.ndarray, at: int, n: int, search: int) -> tuple[int, float]:
    """The shift (samples, up to ``search``) at which ``out[at:at+n]`` matches ``ref`` best,
    and the correlation there."""
    seg = out[at:at + n]
    scores = []
    for lag in range(-search, search + 1):
        other = ref[at + lag:at + lag + n]
        scores.append(float(np.dot(seg, other) / (np.linalg.norm(seg) * np.linalg.norm(other) + 1e-9)))
    k = int(np.argmax(scores))
    return k - search, scores[k]


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def run(src, *sinks):
    return Engine(src, list(sinks), StubBackend()).run()


@pytest.mark.parametrize("codec, rate", [("pcm_mulaw", 8000), ("pcm_alaw", 8000), ("adpcm_ima_wav", 8000), ("pcm_s16le", 16000)])
def test_nvr_audio_in_avi_becomes_aac_in_mp4_on_the_same_timeline(tmp_path, caplog, codec, rate):
    make_avi(tmp_path / "in.avi", codec, rate=rate)
    src = open_source(str(tmp_path / "in.avi"))
    with caplog.at_level(logging.INFO, logger="nirvision.io.video_sink"):
        sink = open_sink(str(tmp_path / "out.mp4"), src.info)  # (which it does is said here)
        summary = run(src, sink)
    assert summary["frames_out"] == 40 and read_video(tmp_path / "out.mp4")["times"] == pytest.approx([0.04 * i for i in range(40)], abs=1e-6)
    with av.open(str(tmp_path / "in.avi")) as c:
        source_packets = sum(1 for p in c.demux(audio=0) if p.size)
    assert sink.audio_codec == "aac" and sink.audio_packets == source_packets and sink.audio_skipped == 0
    said = [r.getMessage() for r in caplog.records if "-> AAC" in r.getMessage()]
    why = "MP4 cannot hold" if codec != "pcm_s16le" else "raw PCM"
    assert len(said) == 1 and f"audio {codec} {rate} Hz -> AAC {rate} Hz mono: " in said[0] and why in said[0], said

    src_rate, source = sound(tmp_path / "in.avi")
    out_codec, out_rate, start, end = audio_span(tmp_path / "out.mp4")
    assert (out_codec, out_rate) == ("aac", src_rate)
    # the sound starts with the first picture (both at 0) and lasts as long as the source's
    # (ADPCM's last block is padded: 1.786 s of sound for 1.6 s of pictures), to the sample
    assert start == pytest.approx(0, abs=1e-6) and end == pytest.approx(len(source) / src_rate, abs=1.5 / src_rate)
    rate_, out = sound(tmp_path / "out.mp4")
    assert abs(len(out) - len(source)) <= PRIMING  # decoded: whole AAC frames
    # the same sound at the same times: the chirp lines up at no shift, and its pitch is kept
    lag, corr = best_lag(out, source, at=src_rate // 4, n=src_rate, search=src_rate // 100)
    assert lag == 0 and corr > 0.9, (lag, corr)
    assert peak_hz(out[src_rate:src_rate + src_rate // 10], src_rate) == pytest.approx(620, abs=30)  # 200 + 400 t Hz at 1.05 s


def test_aac_and_mp3_sources_are_still_copied(tmp_path):
    make_clip(tmp_path / "aac.mp4", [40 * i for i in range(20)], audio_packets=8)
    outs = [("aac.mp4", "aac_out.mp4")]
    if "libmp3lame" in av.codecs_available:
        make_avi(tmp_path / "mp3.avi", "libmp3lame", rate=16000)
        outs.append(("mp3.avi", "mp3_out.mp4"))
    for name, out in outs:
        src = open_source(str(tmp_path / name))
        sink = open_sink(str(tmp_path / out), src.info)
        run(src, sink)
        before, after = read_video(tmp_path / name)["audio"], read_video(tmp_path / out)["audio"]
        assert sink.audio_codec == "copy" and after == before and after, name  # the same packets, times and bytes
        assert audio_span(tmp_path / out)[0] == audio_span(tmp_path / name)[0], name


@pytest.mark.parametrize("source, codec, output, expected", [
    ("in.avi", "pcm_s16le", "out.mkv", "pcm_s16le"),  # Matroska holds PCM, and players play it there
    ("in.avi", "pcm_mulaw", "out.mkv", "aac"),  # Matroska has no G.711
    ("in.avi", "pcm_mulaw", "out.mov", "aac"),  # MOV holds G.711, which few players play
    ("in.mkv", "flac", "out.mov", "aac"),  # FLAC in MOV: FFmpeg's list says yes, its header no
])
def test_the_container_decides_copy_or_aac(tmp_path, source, codec, output, expected):
    if source.endswith(".avi"):
        make_avi(tmp_path / source, codec)
    else:
        make_clip(tmp_path / source, [40 * i for i in range(40)], audio_packets=12, audio_codec=codec)
    src = open_source(str(tmp_path / source))
    sink = open_sink(str(tmp_path / output), src.info)
    assert run(src, sink)["frames_out"] == 40
    assert audio_span(tmp_path / output)[0] == expected and sink.audio_codec == ("copy" if expected == codec else "aac")
    _, source_sound = sound(tmp_path / source)
    rate, out = sound(tmp_path / output)
    # (make_clip's steady 440 Hz tone lines up every 18.2 samples: a shift within half of that)
    lag, corr = best_lag(out, source_sound, at=rate // 4, n=rate // 2, search=rate // 100 if source.endswith(".avi") else 5)
    assert lag == 0 and corr > 0.9, (lag, corr)


@pytest.fixture
def long_avi(tmp_path):
    """4 s of PCM in an AVI (which .mkv copies and .mp4 gets as AAC), in packets of 1024 samples (0.128 s)."""
    make_avi(tmp_path / "long.avi", "pcm_s16le", seconds=4.0)
    return tmp_path / "long.avi"


def test_a_range_keeps_the_sound_of_its_span(tmp_path, long_avi):
    # AAC into .mp4 and a copy into .mkv (which plays PCM) from the same run: the AAC's sound
    # starts and ends where the copy's does (the packet from 0.896 s, begun before the first
    # picture at 1.0 s, left out of both; the one from 2.432 s, begun before the end, kept)
    src = open_source(str(long_avi), start=1.0, end=2.5)
    mp4, mkv = open_sink(str(tmp_path / "out.mp4"), src.info), open_sink(str(tmp_path / "out.mkv"), src.info)
    summary = run(src, mp4, mkv)
    assert summary["frames_out"] == 38 and (mp4.audio_codec, mkv.audio_codec) == ("aac", "copy")
    assert mp4.audio_before_video == mkv.audio_before_video and mp4.audio_packets == mkv.audio_packets == 12
    copy, aac = audio_span(tmp_path / "out.mkv"), audio_span(tmp_path / "out.mp4")
    assert copy[0] == "pcm_s16le" and copy[2:] == pytest.approx((0.024, 1.56), abs=1e-6)
    assert aac[0] == "aac" and aac[2:] == pytest.approx(copy[2:], abs=1e-6)
    # the sound at 0.5 s in the output is the source's at 1.5 s
    rate, source = sound(long_avi)
    _, out = sound(tmp_path / "out.mp4")
    lag, corr = best_lag(out, np.concatenate([source[rate:], np.zeros(rate, np.float32)]), at=rate // 4, n=rate, search=rate // 100)
    assert lag == 0 and corr > 0.9, (lag, corr)


def test_segment_pieces_keep_every_sample_once_in_the_piece_its_time_falls_in(tmp_path, long_avi):
    src = open_source(str(long_avi))
    summary = run(src, open_sink(str(tmp_path / "aac" / "cam.mp4"), src.info, segment=1.0),
                  open_sink(str(tmp_path / "copy" / "cam.mkv"), src.info, segment=1.0))
    aac = [tmp_path / "aac" / f"cam_{k:03d}.mp4" for k in range(4)]
    copy = [tmp_path / "copy" / f"cam_{k:03d}.mkv" for k in range(4)]
    assert summary["frames_out"] == 100 and all(p.exists() for p in aac + copy)
    rate, source = sound(long_avi)
    total = 0.0
    for k, (a, c) in enumerate(zip(aac, copy)):
        codec, _, start, end = audio_span(a)
        assert codec == "aac" and (start, end) == pytest.approx(audio_span(c)[2:], abs=1e-6), k  # where the copy's sound is
        total += end - start
        _, out = sound(a)
        first = int(round(start * rate))  # each piece's sound is the source's from the piece's start on
        shifted = np.concatenate([source[k * rate:], np.zeros(rate, np.float32)])
        lag, corr = best_lag(out, shifted, at=first + rate // 8, n=rate // 2, search=rate // 100)
        assert lag == 0 and corr > 0.9, (k, lag, corr)
    assert total == pytest.approx(len(source) / rate, abs=1e-6)  # every sample once


@pytest.mark.parametrize("audio_first", [True, False])
def test_audio_that_does_not_decode_leaves_the_video_alone_with_a_warning(tmp_path, caplog, audio_first):
    """IMA ADPCM blocks whose step index is out of range. Sound demuxed before the first frame
    is tried before the header: video only; sound after it is counted packet by packet."""
    make_avi(tmp_path / "in.avi", "adpcm_ima_wav", audio_first=audio_first)
    with av.open(str(tmp_path / "in.avi")) as c:
        blocks = [p.pos for p in c.demux(audio=0) if p.size]
    data = bytearray((tmp_path / "in.avi").read_bytes())
    for pos in blocks:
        data[pos + 2] = 0xFF  # the block header's step index (0 .. 88)
    (tmp_path / "in.avi").write_bytes(bytes(data))
    src = open_source(str(tmp_path / "in.avi"))
    with caplog.at_level(logging.WARNING):
        sink = open_sink(str(tmp_path / "out.mp4"), src.info)
        summary = run(src, sink)
    assert summary["frames_out"] == 40 and len(read_video(tmp_path / "out.mp4")["times"]) == 40
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert not c.streams.audio
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "nirvision.io.video_sink"]
    if audio_first:
        assert len(warnings) == 1 and "adpcm_ima_wav audio as AAC: it does not decode" in warnings[0] and "writing video only" in warnings[0]
        assert sink.audio_codec is None
    else:
        assert sink.audio_packets == 0 and sink.audio_skipped == len(blocks)
        assert "could not be decoded" in warnings[0] and f"none of the source's {len(blocks)} audio packets decoded" in warnings[-1]


def test_without_an_aac_encoder_the_video_is_written_alone(tmp_path, caplog, monkeypatch):
    import nirvision.io.video_sink as video_sink

    def no_aac(*_):
        raise av.codec.codec.UnknownCodecError("aac")

    monkeypatch.setattr(video_sink, "AacTranscoder", no_aac)
    make_avi(tmp_path / "in.avi", "pcm_alaw")
    src = open_source(str(tmp_path / "in.avi"))
    with caplog.at_level(logging.WARNING):
        assert run(src, open_sink(str(tmp_path / "out.mp4"), src.info))["frames_out"] == 40
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert len(c.streams.video) == 1 and not c.streams.audio
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "MP4 cannot hold pcm_alaw" in warnings[0] and "nor encode it as AAC" in warnings[0], warnings


def test_a_gap_in_the_sound_stays_a_gap(tmp_path):
    """PCM in Matroska with no sound from 0.512 to 0.896 s: silence there in the AAC, the sound
    after it at its own time."""
    out = av.open(str(tmp_path / "in.mkv"), "w")
    vs = out.add_stream("libx264", rate=25)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
    aus = out.add_stream("pcm_s16le", rate=8000)
    aus.layout = "mono"
    mux_pictures(out, vs, 40)
    for n0 in [*range(0, 4096, 1024), *range(7168, 12800, 1024)]:
        frame = av.AudioFrame.from_ndarray((chirp(n0, 1024, 8000) * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, n0
        for p in aus.encode(frame):
            out.mux(p)
    for p in aus.encode(None):
        out.mux(p)
    out.close()
    src = open_source(str(tmp_path / "in.mkv"))
    run(src, open_sink(str(tmp_path / "out.mp4"), src.info))
    assert audio_span(tmp_path / "out.mp4")[2:] == pytest.approx((0, 1.664), abs=1e-6)
    rate, out = sound(tmp_path / "out.mp4")
    _, source = sound(tmp_path / "in.mkv")
    assert rate == 8000 and np.abs(out[4300:7000]).max() < 0.02  # the gap, a little in from its edges (AAC's frames smear them)
    lag, corr = best_lag(out, source, at=7300, n=4000, search=80)
    assert lag == 0 and corr > 0.9, (lag, corr)


def test_a_batch_of_nvr_avi_exports_keeps_their_sound(tmp_path, tiny_model, capsys):
    (tmp_path / "nvr").mkdir()
    make_avi(tmp_path / "nvr" / "ch1.avi", "pcm_mulaw")
    make_avi(tmp_path / "nvr" / "ch2.avi", "adpcm_ima_wav")
    code = main(["colorize", str(tmp_path / "nvr"), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                 "--threads", "1", "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    outputs = sorted((tmp_path / "out").glob("*.mp4"))
    assert [p.stem[:3] for p in outputs] == ["ch1", "ch2"] and "writing video only" not in err
    for p in outputs:
        assert audio_span(p)[0] == "aac" and audio_span(p)[2] == pytest.approx(0, abs=1e-6), p
