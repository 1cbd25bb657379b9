"""Fixes from the format zoo: a clock that jumps back keeps the timeline going (sound in step),
gaps too long for one MP4 frame keep the output, every audio track is kept, and a video's
frames in a PNG folder say their times."""
import errno
import logging
import struct
import zlib
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from nirvision.errors import InputError, OutputFull
from nirvision.io import open_sink, open_source
from nirvision.io.base import SourceInfo
from nirvision.io.video_sink import VideoSink
from nirvision.runtime.engine import Engine
from tests.io.media import StubBackend, frame_image, make_clip, read_video
from tests.io.test_audio_transcode import mux_pictures


def run(src, *sinks):
    return Engine(src, list(sinks), StubBackend()).run()


def joined_ts(tmp_path, first_ms: int = 0):
    """Two 1 s MPEG-TS recordings (25 fps, AAC 8 kHz) joined end to end (``cat a.ts b.ts``): the
    first starts at ``first_ms``, the second at 0, so the clock goes back where they meet."""
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "cat.ts"
    make_clip(a, [first_ms + 40 * i for i in range(25)], audio_packets=8, audio_start_ms=first_ms)
    make_clip(b, [40 * i for i in range(25)], audio_packets=8)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    with av.open(str(b)) as c:
        b_audio = [bytes(p) for p in c.demux(audio=0) if p.size]
    return joined, b_audio


@pytest.mark.parametrize("first_ms", [0, 100_000], ids=["both-from-0", "restart-read-as-a-wrap"])
def test_a_clock_that_jumps_back_keeps_the_timeline_going_with_its_sound(tmp_path, caplog, first_ms):
    # 100 s then 0: FFmpeg reads the restart of the 33-bit clock as a jump forward of 26.5 h
    path, b_audio = joined_ts(tmp_path, first_ms)
    src = open_source(str(path))
    with caplog.at_level(logging.WARNING):
        summary = run(src, open_sink(str(tmp_path / "out.mp4"), src.info))
    out = read_video(tmp_path / "out.mp4")
    # the second recording's 25 frames follow the first's at 25 fps (they sat within 0.3 ms)
    assert out["times"] == pytest.approx([0.04 * i for i in range(50)], abs=1e-3)
    assert summary["frames_out"] == 50 and summary["discontinuities"] == 1 and summary["shortfall"] is None
    jumps = [r.getMessage() for r in caplog.records if "jump back" in r.getMessage()]
    assert len(jumps) == 1 and "jump back from 0.960 s to " in jumps[0] and "from 1.000 s on" in jumps[0], jumps
    assert first_ms or "to 0.000 s" in jumps[0]
    # its sound moved with its pictures, as the first recording's lies (ADTS headers, 7 bytes, dropped in MP4):
    # its packet from 0 s at 1.0 s, the one before (the AAC encoder's priming, from -0.128 s) overlaps the first's last and is left out
    audio = [(t, data) for t, data in out["audio"] if t >= 1.0 - 1e-3]
    assert [data for _, data in audio] == [x[7:] for x in b_audio[1:]]
    assert [t for t, _ in audio] == pytest.approx([1.0 + 0.128 * k for k in range(8)], abs=1e-3)
    assert len(out["audio"]) == 16 and not [r for r in caplog.records if "could not be written" in r.getMessage()]


def test_segments_of_a_joined_recording_see_the_timeline_going_on(tmp_path):
    path, _ = joined_ts(tmp_path)
    src = open_source(str(path))
    summary = run(src, open_sink(str(tmp_path / "seg.mp4"), src.info, segment=1.0))
    pieces = [read_video(p)["times"] for p in sorted(tmp_path.glob("seg_*.mp4"))]
    assert summary["frames_out"] == 50 and [len(p) for p in pieces] == [25, 25]
    assert pieces[1] == pytest.approx([0.04 * i for i in range(25)], abs=1e-3)


def test_forward_gaps_are_kept(tmp_path):
    make_clip(tmp_path / "gap.ts", [40 * i for i in range(5)] + [60_000 + 40 * i for i in range(5)])
    src = open_source(str(tmp_path / "gap.ts"))
    summary = run(src, open_sink(str(tmp_path / "out.mkv"), src.info))
    assert summary["discontinuities"] == 0
    assert read_video(tmp_path / "out.mkv")["times"] == pytest.approx([0.04 * i for i in range(5)] + [60 + 0.04 * i for i in range(5)], abs=1e-3)


GAP_MS = 50_400_000  # 14 h: past what one MP4 frame may last at 90 kHz (2^31 ticks, 6.6 h)


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_a_gap_longer_than_an_mp4_frame_may_last_keeps_the_output_and_the_times(tmp_path, caplog, suffix):
    pts = [40 * i for i in range(10)] + [GAP_MS + 40 * i for i in range(10)]
    make_clip(tmp_path / "gap.ts", pts)
    src = open_source(str(tmp_path / "gap.ts"))
    sink = open_sink(str(tmp_path / f"out{suffix}"), src.info)
    with caplog.at_level(logging.WARNING):
        summary = run(src, sink)  # was: InputError "writing failed (... patches welcome); expected ... free space", the output deleted
    assert summary["frames_out"] == 20
    times = read_video(tmp_path / f"out{suffix}")["times"]
    expected = [p / 1000 for p in pts]
    assert [t for t in times if min(abs(t - e) for e in expected) < 1e-3] == pytest.approx(expected, abs=1e-3)
    extra = [t for t in times if min(abs(t - e) for e in expected) >= 1e-3]
    assert len(extra) == sink.repeated > 0 and all(0.36 < t < GAP_MS / 1000 for t in extra)
    assert all(b - a < 6.6 * 3600 for a, b in zip(times, times[1:]))
    said = [r.getMessage() for r in caplog.records if "written again" in r.getMessage()]
    assert len(said) == 1 and "gap of 14.0 h between the frames at 0.360 s and 50400.000 s" in said[0]


def test_a_gap_in_mkv_needs_no_repeat(tmp_path):
    pts = [40 * i for i in range(5)] + [GAP_MS + 40 * i for i in range(5)]
    make_clip(tmp_path / "gap.ts", pts)
    src = open_source(str(tmp_path / "gap.ts"))
    sink = open_sink(str(tmp_path / "out.mkv"), src.info)
    run(src, sink)
    assert sink.repeated == 0 and read_video(tmp_path / "out.mkv")["times"] == pytest.approx([p / 1000 for p in pts], abs=1e-3)


def test_a_muxer_refusal_names_the_muxer_not_the_disk(tmp_path):
    info = SourceInfo(kind="test", description="t", live=False, fps=Fraction(25), time_base=Fraction(1, 90000))
    sink = VideoSink(tmp_path / "out.mp4", info)
    try:
        refused = sink._failed(av.error.PatchWelcomeError(-1163346256, "Not yet implemented in FFmpeg, patches welcome"), "writing", 30240.144)
        assert type(refused) is InputError
        assert str(refused) == (f"output {tmp_path / 'out.mp4'}: writing failed (Not yet implemented in FFmpeg, patches welcome): the mp4 muxer "
                                "refused the data at 30240.144 s, not a disk problem; expected data that .mp4 can hold (.mkv holds more)")
        full = sink._failed(OSError(errno.ENOSPC, "No space left on device"), "writing")
        assert isinstance(full, OutputFull) and str(full).endswith("writing failed (No space left on device); expected a writable path with free space")
    finally:
        sink.close()


def make_two_tracks(path, n: int = 25) -> dict[int, list[bytes]]:
    """A video (25 fps) with two audio tracks: AAC and MP3, 8 kHz / 16 kHz mono; each track's packets."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=25)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
    tracks = []
    for codec, rate in (("aac", 8000), ("libmp3lame", 16000)):
        s = out.add_stream(codec, rate=rate)
        s.layout = "mono"
        tracks.append((s, rate))
    mux_pictures(out, vs, n)
    for s, rate in tracks:
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
        fmt = s.codec_context.format.name
        data = {"s16": (samples * 32767).astype(np.int16), "s32": (samples * 2**31).astype(np.int32)}.get(fmt[:3], samples)
        size = s.codec_context.frame_size or 1152
        for k in range(0, rate - size, size):
            af = av.AudioFrame.from_ndarray(data[None, k:k + size], format=fmt, layout="mono")
            af.sample_rate, af.pts = rate, k
            for p in s.encode(af):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    out.close()
    return track_packets(path)


def track_packets(path) -> dict[tuple[int, str], list[bytes]]:
    """(index, codec) of each audio track -> its packets' bytes, in order (read in one pass)."""
    with av.open(str(path)) as c:
        tracks = {s.index: (s.index, s.codec_context.name) for s in c.streams.audio}
        out = {key: [] for key in tracks.values()}
        for p in c.demux(*c.streams.audio):
            if p.size:
                out[tracks[p.stream.index]].append(bytes(p))
    return out


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_every_audio_track_is_kept(tmp_path, suffix):
    source = make_two_tracks(tmp_path / "in.mkv")
    src = open_source(str(tmp_path / "in.mkv"))
    assert len(src.info.audio_streams) == 2
    sink = open_sink(str(tmp_path / f"out{suffix}"), src.info)
    summary = run(src, sink)
    assert summary["frames_out"] == 25
    written = track_packets(tmp_path / f"out{suffix}")
    assert [codec for _, codec in written] == ["aac", "mp3float"] and [t.codec for t in sink.tracks] == ["copy", "copy"]
    assert [len(x) for x in source.values()] == [8, 29]
    assert list(written.values()) == list(source.values())  # each track's packets, every one, unchanged


def test_a_second_output_gets_every_track_too(tmp_path):
    # the sinks share the source's packets: each gives them back as it found them (their stream too)
    make_two_tracks(tmp_path / "in.mkv")
    src = open_source(str(tmp_path / "in.mkv"))
    first, second = open_sink(str(tmp_path / "a.mkv"), src.info), open_sink(str(tmp_path / "b.mp4"), src.info)
    run(src, first, second)
    for name in ("a.mkv", "b.mp4"):
        assert [len(x) for x in track_packets(tmp_path / name).values()] == [8, 29], name


def png_text(path) -> dict[str, str]:
    """The tEXt chunks of a PNG file (every chunk's CRC checked)."""
    data, pos, out = path.read_bytes(), 8, {}
    while pos < len(data):
        (size,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        assert struct.unpack(">I", data[pos + 8 + size:pos + 12 + size])[0] == zlib.crc32(data[pos + 4:pos + 8 + size]), kind
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + size].partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + size
    return out


def test_a_videos_frames_in_a_folder_say_their_times(tmp_path):
    make_clip(tmp_path / "in.mp4", [40 * i for i in range(50)])
    src = open_source(str(tmp_path / "in.mp4"), start=1.2)
    summary = run(src, open_sink(str(tmp_path / "png") + "/", src.info))
    pngs = sorted((tmp_path / "png").iterdir())
    assert summary["frames_out"] == 20 and [p.name for p in pngs] == [f"frame_{i:06d}.png" for i in range(20)]
    assert [png_text(p) for p in pngs] == [{"source_time_s": f"{1.2 + 0.04 * i:.6f}"} for i in range(20)]
    assert cv2.imread(str(pngs[0])).shape == (48, 64, 3)


def test_an_image_folder_gets_no_times_list(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "in" / f"n{i}.png"), frame_image(i, 48, 64))
    src = open_source(str(tmp_path / "in"))
    run(src, open_sink(str(tmp_path / "out") + "/", src.info))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["n0.png", "n1.png"]
    assert png_text(tmp_path / "out" / "n0.png") == {}
