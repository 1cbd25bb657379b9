"""16-bit NIR: frames whose values use 10, 12 or 14 of the 16 bits (Mono10 / Mono12 cameras)."""
import logging

import cv2
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.errors import InputError
from nirvision.io import open_source
from nirvision.runtime.frames import SampleDepth, check_input_bits, to_nir


def ramp(top, h=16, w=256):
    """A horizontal ramp from 0 to ``top`` (uint16)."""
    return np.tile(np.linspace(0, top, w).round().astype(np.uint16), (h, 1))


def test_auto_depth_keeps_the_levels_of_12_bit_frames_and_only_grows(caplog):
    depth = SampleDepth(name="cam")
    with caplog.at_level(logging.WARNING):
        first = to_nir(ramp(4095), depth=depth)
    assert depth.bits == 12 and first.max() == 255 and len(np.unique(first)) == 256
    assert "read as 12-bit" in caplog.text and "cam" not in caplog.text  # the frame's own name is said
    # a darker frame keeps the stream's scale (no brightening frame by frame)
    assert to_nir(ramp(1000), depth=depth).max() == 1000 >> 4
    # a brighter one needs more bits: the depth grows, and says so
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert to_nir(ramp(65535), depth=depth).max() == 255
    assert depth.bits == 16 and "read as 12-bit before" in caplog.text
    # a full-range 16-bit stream is read as before, without a word
    caplog.clear()
    full = SampleDepth()
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(to_nir(ramp(65535), depth=full), (ramp(65535) >> 8).astype(np.uint8))
    assert caplog.text == ""


def test_a_fixed_depth_scales_by_it_and_clips_above():
    assert np.array_equal(SampleDepth(10).to_uint8(np.array([[0, 4, 1023, 5000]], np.uint16)), [[0, 1, 255, 255]])
    assert np.array_equal(SampleDepth(16).to_uint8(ramp(4095)), (ramp(4095) >> 8).astype(np.uint8))
    assert check_input_bits("auto") is None and check_input_bits("12") == 12 and check_input_bits(14) == 14
    for bad in ("11", 8, "12.0", True, "x"):
        with pytest.raises(InputError, match="expected auto or one of 10, 12, 14, 16"):
            check_input_bits(bad)


def test_a_folder_of_12_bit_pngs_keeps_its_levels(tmp_path, tiny_model, capsys):
    folder = tmp_path / "mono12"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"f{i}.png"), ramp(4095 - 100 * i, h=24, w=32))
    frames = [f.image for f in open_source(str(folder))]
    assert [f.max() for f in frames] == [255, 249, 243] and all(f.dtype == np.uint8 for f in frames)
    assert [f.image.max() for f in open_source(str(folder), input_bits=16)] == [15, 15, 15]
    code = main(["colorize", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 0 and len(list((tmp_path / "out").glob("*.png"))) == 3, err
    code = main(["colorize", str(folder), "-o", str(tmp_path / "out2"), "--input-bits", "13"])
    assert code == 2 and "--input-bits '13': expected auto or one of 10, 12, 14, 16" in capsys.readouterr().err


def test_the_api_reads_12_bit_frames_by_one_depth(tiny_model):
    from nirvision.api import Colorizer

    colorizer = Colorizer.load(model=str(tiny_model), backend="eager", threads=1)
    frame = ramp(4095, h=32, w=32)
    assert np.array_equal(colorizer(frame), colorizer((frame >> 4).astype(np.uint8)))  # as its 8-bit picture
    assert colorizer.depth.bits == 12
    ten = ramp(1023, h=32, w=32)
    dark = colorizer(ten)  # the same stream: read at its 12 bits
    colorizer.new_stream()  # another camera: its depth found afresh
    assert np.array_equal(colorizer(ten), colorizer((ten >> 2).astype(np.uint8))) and colorizer.depth.bits == 10
    assert not np.array_equal(dark, colorizer(ten))
    fixed = Colorizer.load(model=str(tiny_model), backend="eager", threads=1, input_bits=16)
    assert np.array_equal(fixed(frame), fixed((frame >> 8).astype(np.uint8)))
    with pytest.raises(InputError, match="input_bits 9"):
        Colorizer.load(model=str(tiny_model), input_bits=9)


def test_gray16_video_of_12_bit_values_keeps_its_levels(tmp_path):
    from fractions import Fraction

    import av

    path = tmp_path / "mono12.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 16, "gray16le"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(ramp(4095 - 1000 * i, w=64), format="gray16le")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert [int(f.image.max()) for f in open_source(str(path))] == [255, 193, 130]  # 4095, 3095, 2095 >> 4
    assert [int(f.image.max()) for f in open_source(str(path), input_bits=16)] == [15, 12, 8]


def test_a_refused_frame_or_an_alpha_channel_does_not_set_the_depth(caplog):
    depth = SampleDepth()
    picture = ramp(4095)
    to_nir(picture, depth=depth)
    with pytest.raises(ValueError, match="expected an H x W"):
        to_nir(np.full((3,), 65535, np.uint16), depth=depth)
    assert depth.bits == 12  # the refused frame left the scale alone
    # an opaque 16-bit alpha channel is not part of the picture
    rgba = np.dstack([picture, picture, picture, np.full_like(picture, 65535)])
    fresh = SampleDepth()
    assert np.array_equal(to_nir(rgba, depth=fresh), to_nir(picture, depth=SampleDepth())) and fresh.bits == 12


def test_a_fixed_depth_says_once_that_it_clips(caplog):
    depth = SampleDepth(10, name="cam")
    with caplog.at_level(logging.WARNING):
        to_nir(ramp(65535), depth=depth)
        to_nir(ramp(65535), depth=depth)
    assert caplog.text.count("above what 10 bits hold (1023)") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        to_nir(ramp(1023), depth=SampleDepth(10))
    assert caplog.text == ""
