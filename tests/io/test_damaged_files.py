"""Damaged and truncated video files: a damaged stretch is read through to the intact rest and
reported once; a file that ends short of the length its header announces says where it ended
(MKV, WebM: no frame count in the header); normal files and time ranges say nothing."""
import json
import logging

import av
import numpy as np
import pytest

from nirvision.io.file_source import MAX_STALLED, FileSource
from nirvision.runtime.stats import source_losses
from tests.io.media import ListSource, corrupt_packets, make_clip, make_video


def garble(path, first: int, last: int, seed: int = 0) -> None:
    """Overwrite video packets ``first`` to ``last`` (in file order) whole with random bytes,
    as a bad stretch of disk would: the container's index still points at them."""
    with av.open(str(path)) as c:
        spans = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos, size in spans[first:last + 1]:
        data[pos:pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def pyav_frames(path) -> dict[float, np.ndarray]:
    """What PyAV alone decodes of ``path`` (time, s -> luma), skipping packets that fail."""
    out = {}
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            try:
                out.update((round(float(f.pts * f.time_base), 3), f.to_ndarray(format="gray")) for f in packet.decode())
            except av.error.FFmpegError:
                pass
    return out


def said(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def test_a_long_damaged_stretch_is_read_through_to_the_intact_rest(tmp_path, caplog):
    """60 packets of garbage (2.4 s; more than the 50 in a row the reader used to give up
    after): the frames from the next key frame on are all there, as PyAV decodes them."""
    path = tmp_path / "nvr.mp4"
    make_video(path, 150, options={"g": "25", "sc_threshold": "0"})  # key frames at 0, 1, 2, 3, 4, 5 s
    garble(path, 30, 89)  # 1.2 s to 3.6 s; 3.6 s to 4 s intact, but predicted from the garbage
    reference = pyav_frames(path)
    src = FileSource(path)
    with caplog.at_level(logging.WARNING):
        frames = [(round(f.time, 3), f.image) for f in src]
    after = [(t, image) for t, image in frames if t >= 4.0]
    assert [t for t, _ in after] == sorted(t for t in reference if t >= 4.0) == [round(4 + 0.04 * k, 3) for k in range(50)]
    assert all(np.array_equal(image, reference[t]) for t, image in after)
    before = [(t, image) for t, image in frames if t < 4.0]
    # before the stretch: PyAV's frames (a decoder thread may lose the few it held when the garbage came)
    assert len(before) >= 20 and all(t < 1.2 and np.array_equal(image, reference[t]) for t, image in before)
    # the packets after the garbage wait for the key frame at 4 s: no smeared pictures
    [stretch] = src.damage
    assert stretch["to"] == 4.0 and 0.8 <= stretch["from"] <= 1.2
    assert 60 <= stretch["packets"] <= 70 and src.decode_errors == stretch["packets"]
    assert said(caplog, "could not be decoded") == [f"{path}: frames could not be decoded from {stretch['from']:.2f} s to 4.00 s "
                                                     f"({stretch['packets']} packets); skipped"]
    assert not said(caplog, "failed to decode") and not said(caplog, "giving up") and not said(caplog, "truncated")
    assert src.shortfall is None


def test_each_damaged_stretch_is_reported_once(tmp_path, caplog):
    """MJPEG (every frame a key frame): two stretches, two warnings; every other frame keeps its
    time and picture, and all packets were read, so the file is not taken for a truncated one."""
    path = tmp_path / "cam.avi"
    make_clip(path, list(range(0, 4000, 40)), codec="mjpeg")
    bad = list(range(10, 70)) + [80, 81, 82]
    corrupt_packets(path, bad)
    src = FileSource(path)
    with caplog.at_level(logging.WARNING):
        frames = list(src)
    kept = [k for k in range(100) if k not in bad]
    assert [round(f.time, 3) for f in frames] == [round(0.04 * k, 3) for k in kept]
    assert [int(np.median(f.image[:, :20])) for f in frames] == pytest.approx([8 * (k % 30) for k in kept], abs=3)
    assert src.damage == [{"from": 0.4, "to": 2.8, "packets": 60}, {"from": 3.2, "to": 3.32, "packets": 3}]
    assert src.decode_errors == 63
    assert said(caplog, f"{path}:") == [f"{path}: frames could not be decoded from 0.40 s to 2.80 s (60 packets); skipped",
                                        f"{path}: frames could not be decoded from 3.20 s to 3.32 s (3 packets); skipped"]
    assert src.shortfall is None


def test_a_stuck_demuxer_is_given_up_on(tmp_path, monkeypatch, caplog):
    """A demuxer that hands the same damaged packet again and again gets nowhere: reading ends
    after MAX_STALLED of them, with what decoded before."""
    path = tmp_path / "stuck.avi"
    make_clip(path, list(range(0, 400, 40)), codec="mjpeg")
    corrupt_packets(path, [3])

    def stuck(self):
        packets = [p for p in self.container.demux(self.video) if p.size]
        yield from packets[:3]
        while True:
            yield packets[3]

    monkeypatch.setattr(FileSource, "_packets", stuck)
    src = FileSource(path)
    with caplog.at_level(logging.WARNING):
        frames = list(src)
    assert [round(f.time, 3) for f in frames] == [0.0, 0.04, 0.08]
    assert src.decode_errors == MAX_STALLED + 1  # the first one moved on in the file
    assert src.damage == [{"from": 0.12, "to": 0.16, "packets": MAX_STALLED + 1}]
    assert len(said(caplog, "giving up after")) == 1


def cut(path, fraction: float = 0.5):
    data = path.read_bytes()
    short = path.with_name("cut_" + path.name)
    short.write_bytes(data[: int(len(data) * fraction)])
    return short


KINDS = [("mkv", "libx264", "aac"), ("webm", "libvpx-vp9", "libopus")]


@pytest.mark.parametrize("ext,codec,audio_codec", KINDS)
@pytest.mark.parametrize("audio", [True, False])
def test_a_truncated_mkv_or_webm_says_where_it_ended(tmp_path, caplog, ext, codec, audio_codec, audio):
    """No frame count in the header, but a length (3 s): a copy broken off at half its bytes
    ends well before it."""
    path = tmp_path / f"cam.{ext}"
    make_clip(path, list(range(0, 3000, 40)), codec=codec, audio_codec=audio_codec, audio_packets=24)
    src = FileSource(cut(path), audio=audio)
    with caplog.at_level(logging.WARNING):
        frames = list(src)
    end = round(frames[-1].time + 0.04, 3)
    assert 0.2 < end < 2.5
    assert said(caplog, "truncated") == [f"{src.path}: ended after {len(frames)} frames, at {end:.2f} s of the 3.00 s its header announces "
                                         "(truncated or damaged?)"]
    assert src.shortfall == {"frames": len(frames), "expected": None, "seconds": end, "expected_seconds": 3.0}
    assert src.damage == []


def test_a_range_of_a_truncated_mkv_warns_only_where_it_reaches_past_the_cut(tmp_path, caplog):
    path = tmp_path / "cam.mkv"
    make_clip(path, list(range(0, 3000, 40)), audio_packets=24)
    short = cut(path)
    with caplog.at_level(logging.WARNING):
        src = FileSource(short, start=0.2, end=0.8)  # before the cut: a range ending before the length is no truncation
        assert len(list(src)) == 15 and src.shortfall is None
        assert not said(caplog, "truncated")
        src = FileSource(short, start=0.2, end=2.5)
        frames = list(src)
    end = round(frames[-1].time + 0.04, 3)
    assert said(caplog, "truncated") == [f"{short}: ended after {len(frames)} frames, at {end:.2f} s, short of --end 2.5 s "
                                         "(its header announces 3.00 s; truncated or damaged?)"]
    assert src.shortfall == {"frames": len(frames), "expected": None, "seconds": end, "expected_seconds": 2.5}


@pytest.mark.parametrize("ext,codec,audio_codec", KINDS + [("ts", "libx264", "aac")])
@pytest.mark.parametrize("options", [{}, {"audio": False}, {"start": 0.5, "end": 2.0}, {"end": 1.0}, {"start": 2.5}],
                         ids=["whole", "no-audio", "start-end", "end", "start"])
def test_normal_files_and_ranges_do_not_warn(tmp_path, caplog, ext, codec, audio_codec, options):
    path = tmp_path / f"cam.{ext}"
    make_clip(path, list(range(0, 3000, 40)), codec=codec, audio_codec=audio_codec, audio_packets=24)
    src = FileSource(path, **options)
    with caplog.at_level(logging.WARNING):
        frames = list(src)
    first, last = options.get("start", 0), options.get("end", 3.0)
    assert [round(f.time - src.zero, 3) for f in frames] == [round(0.04 * k, 3) for k in range(75) if first <= 0.04 * k < last - 1e-9]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert src.shortfall is None and src.damage == [] and src.decode_errors == 0


def test_a_container_length_that_counts_sound_is_no_truncation(tmp_path, caplog):
    """An MKV without the tracks' own lengths (muxers other than FFmpeg and mkvmerge): the
    container's length may be its sound's, here 1.5 s past the pictures."""
    path = tmp_path / "cam.mkv"
    make_clip(path, list(range(0, 2000, 40)), audio_packets=28)  # sound to 3.5 s
    path.write_bytes(path.read_bytes().replace(b"DURATION", b"XURATION"))  # the per-track length tags, unrecognised
    with caplog.at_level(logging.WARNING):
        for audio in (True, False):  # the sound read to its end; not read at all
            src = FileSource(path, audio=audio)
            assert len(list(src)) == 50 and src.shortfall is None
        assert not said(caplog, "truncated")
        src = FileSource(cut(path), audio=True)
        frames = list(src)
    assert len(said(caplog, "truncated")) == 1 and src.shortfall["frames"] == len(frames) < 50
    assert src.shortfall["expected_seconds"] > 3.5


def test_source_losses_for_the_run_summary(tmp_path):
    path = tmp_path / "cam.avi"
    make_clip(path, list(range(0, 800, 40)), codec="mjpeg")
    corrupt_packets(path, [5, 6, 7])
    src = FileSource(path)
    list(src)
    losses = source_losses(src)
    assert losses == {"damage": [{"from": 0.2, "to": 0.32, "packets": 3}], "shortfall": None}
    mkv = tmp_path / "cam.mkv"
    make_clip(mkv, list(range(0, 3000, 40)))
    src = FileSource(cut(mkv))
    n = len(list(src))
    losses = source_losses(src)
    assert losses["damage"] == [] and losses["shortfall"]["frames"] == n and losses["shortfall"]["expected_seconds"] == 3.0
    assert json.loads(json.dumps(losses)) == losses  # as --stats-json writes it
    assert source_losses(ListSource([np.zeros((4, 4), np.uint8)])) == {"damage": [], "shortfall": None}


def test_the_run_summary_and_stats_json_list_the_losses(tmp_path, capsys):
    from nirvision.cli import main

    path = tmp_path / "cam.avi"
    make_clip(path, list(range(0, 800, 40)), codec="mjpeg")
    corrupt_packets(path, [5, 6, 7])
    code = main(["colorize", str(path), "-o", str(tmp_path / "out.mp4"), "--model", "lite", "--threads", "1", "--workers", "1",
                 "--no-progress", "--stats-json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["damage"] == [{"from": 0.2, "to": 0.32, "packets": 3}] and stats["shortfall"] is None
    assert stats["frames_out"] == 17 and stats["decode_errors"] == 3
    assert "1 damaged stretch read through (0.20-0.32 s)" in err.strip().splitlines()[-1]
