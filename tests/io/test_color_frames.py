"""--color-frames: frames already in colour (a day/night camera by day) pass through unchanged.

The chroma measure on gray, tinted and colour pictures; a stream's verdict held over a switch;
whole runs on a video that goes from NIR to colour and back, on an image folder (PNG: the
colour image comes out bit for bit), through the CLI and the Python API; bad values refused.
"""
import json
import logging
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from nirvision.errors import InputError
from nirvision.io import open_source
from nirvision.io.color_frames import ENTER_SHARE, LEAVE_SHARE, ColorFrames, array_thumbnail, av_thumbnail, color_share, to_rgb8
from nirvision.runtime.engine import Engine
from tests.io.media import ListSource, RecordingSink, StubBackend, read_video, run_cli


def colour_scene(h: int = 48, w: int = 64, shift: int = 0) -> np.ndarray:
    """RGB: green below, blue sky above, a red roof: the colours of a day picture."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = (110, 150, 220)
    img[h // 2:] = (60, 140, 50)
    img[h // 3: h // 2 + 4, w // 4: w // 2] = (170, 50, 40)
    return np.roll(img, shift, axis=1)


def gray_scene(h: int = 48, w: int = 64, shift: int = 0) -> np.ndarray:
    img = np.tile(np.linspace(30, 220, w, dtype=np.float32), (h, 1)).astype(np.uint8)
    return np.roll(img, shift, axis=1)


def write_clip(path, kinds: str, size=(64, 48), rate=25) -> None:
    """One frame a letter: g (gray NIR) or c (colour), H.264 yuv420p at ``rate``."""
    w, h = size
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    for i, kind in enumerate(kinds):
        rgb = colour_scene(h, w, i) if kind == "c" else cv2.cvtColor(gray_scene(h, w, i), cv2.COLOR_GRAY2RGB)
        f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        f.pts, f.time_base = i, Fraction(1, rate)
        for pk in vs.encode(f):
            out.mux(pk)
    for pk in vs.encode():
        out.mux(pk)
    out.close()


def yuv_frame(y: np.ndarray, u: int, v: int) -> av.VideoFrame:
    """A yuv420p frame of luma ``y`` (limited range) with flat chroma planes at ``u`` and ``v``."""
    h, w = y.shape
    f = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(f.planes, ((16 + y * (219 / 255)).round().astype(np.uint8), np.full((h // 2, w // 2), u, np.uint8),
                                      np.full((h // 2, w // 2), v, np.uint8))):
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : data.shape[1]] = data
    return f


def test_share_of_coloured_pixels_in_gray_tinted_and_colour_pictures():
    gray = cv2.cvtColor(gray_scene(), cv2.COLOR_GRAY2BGR)
    assert color_share(array_thumbnail(gray)) == 0.0
    assert array_thumbnail(gray_scene()) is None  # one channel: no colour to look for
    assert color_share(array_thumbnail(cv2.cvtColor(colour_scene(), cv2.COLOR_RGB2BGR))) == 1.0
    # gray through H.264's 4:2:0 and back to RGB stays gray; colour stays colour
    vf = av.VideoFrame.from_ndarray(cv2.cvtColor(gray_scene(), cv2.COLOR_GRAY2RGB), format="rgb24").reformat(format="yuv420p")
    assert color_share(av_thumbnail(vf)) == 0.0
    assert av_thumbnail(vf.reformat(format="gray")) is None
    vf = av.VideoFrame.from_ndarray(colour_scene(), format="rgb24").reformat(format="yuv420p")
    assert color_share(av_thumbnail(vf)) > 0.9
    # chroma one code off neutral (OpenCV's VideoWriter writes 127): gray; two codes: a tint, colour
    y = gray_scene(96, 128).astype(np.float32)
    assert color_share(av_thumbnail(yuv_frame(y, 127, 127))) == 0.0 and color_share(av_thumbnail(yuv_frame(y, 129, 128))) == 0.0
    assert color_share(av_thumbnail(yuv_frame(y, 130, 130))) > 0.9
    # a camera's coloured clock, an NVR's detection boxes and a logo on a black-and-white night picture: still NIR
    night = cv2.cvtColor(gray_scene(360, 640), cv2.COLOR_GRAY2BGR)
    cv2.putText(night, "2026-12-02 03:14:15", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 220, 255), 2)
    for k in range(8):
        x, y0 = 40 + 75 * k, 120 + 20 * (k % 3)
        cv2.rectangle(night, (x, y0), (x + 60, y0 + 150), (0, 255, 0), 2)
    night[300:350, 560:630] = (200, 60, 20)  # a logo
    assert 0.0 < color_share(array_thumbnail(night)) < LEAVE_SHARE
    # a tint (the IR light through a camera's colour filters) is colour: documented as such
    tinted = np.clip(gray_scene()[..., None] * np.array([1.0, 0.9, 1.15]), 0, 255).astype(np.uint8)
    assert color_share(array_thumbnail(tinted)) > ENTER_SHARE
    # a palette frame's colours count (pal8 has one component, as gray has)
    pal8 = av.VideoFrame(64, 48, "pal8")
    np.frombuffer(pal8.planes[0], np.uint8).reshape(48, pal8.planes[0].line_size)[:, :64] = 1
    np.frombuffer(pal8.planes[1], np.uint8)[4:8] = (50, 140, 60, 255)  # entry 1: B, G, R, A
    assert color_share(av_thumbnail(pal8)) == 1.0


def test_a_dull_day_does_not_flip_back_and_forth():
    frames = ColorFrames("pass", fps=25)
    day, dull, night = (np.full((48, 64, 3), v, np.uint8) for v in ((60, 140, 50), (128, 128, 125), (128, 128, 128)))
    dull[:, :9] = (60, 140, 50)  # 14% of the picture coloured: between the shares that enter and leave colour
    picked = [frames.pick(lambda img=img: img, lambda img=img: img) is not None for img in [night] * 3 + [dull] * 6 + [day] * 5 + [dull] * 8 + [night] * 5]
    # a dull frame does not enter colour from NIR, nor leave it once in colour
    assert picked == [False] * 3 + [False] * 6 + [False] * 4 + [True] + [True] * 8 + [True] * 4 + [False]


def test_sixteen_bit_and_float_colour_become_8_bit_rgb():
    bgr = cv2.cvtColor(colour_scene(), cv2.COLOR_RGB2BGR)
    wide = bgr.astype(np.uint16) << 4  # 12 bits in 16
    assert np.array_equal(to_rgb8(wide, 12), colour_scene())
    assert np.array_equal(to_rgb8(bgr.astype(np.float32) / 255), colour_scene())
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)])
    assert np.array_equal(to_rgb8(bgra), colour_scene())


def verdicts(frames: ColorFrames, kinds: str) -> str:
    """'p' where a frame passes, 'c' where it is colorized."""
    out = []
    for kind in kinds:
        img = cv2.cvtColor(colour_scene(), cv2.COLOR_RGB2BGR) if kind == "c" else cv2.cvtColor(gray_scene(), cv2.COLOR_GRAY2BGR)
        rgb = frames.pick(lambda: array_thumbnail(img), lambda: to_rgb8(img))
        out.append("c" if rgb is None else "p")
    return "".join(out)


def test_a_stream_switches_after_the_hold_and_ignores_a_stray_frame(caplog):
    caplog.set_level(logging.INFO, "nirvision.io.color_frames")
    frames = ColorFrames("pass", name="cam", fps=25)
    assert frames.hold == 5  # 0.2 s at 25 fps
    got = verdicts(frames, "ggg" + "c" * 8 + "g" + "c" * 3 + "g" * 7)
    # the first frame decides; a switch needs 5 frames in a row; one gray frame in the day is
    # no switch (it goes out as it came: gray)
    assert got == "ccc" + "cccc" + "pppp" + "p" + "ppp" + "pppp" + "ccc"
    switches = [r.getMessage() for r in caplog.records]
    assert switches == ["cam: frames in NIR, colorized at frame 0", "cam: frames in colour, passed through unchanged from frame 7",
                        "cam: frames in NIR, colorized from frame 19"]
    assert verdicts(ColorFrames("pass", continuous=False), "gcgcc") == "cpcpp"  # pictures of a folder: each alone


def test_an_unlikely_frame_rate_does_not_hold_a_verdict_for_minutes():
    assert ColorFrames("pass", fps=Fraction(90000)).hold == ColorFrames("pass", fps=1000).hold == ColorFrames("pass").hold == 5
    assert ColorFrames("pass", fps=Fraction(30000, 1001)).hold == 6


def test_sixteen_bit_colour_video_passes_by_its_depth(tmp_path):
    out = av.open(str(tmp_path / "rgb48.mkv"), "w")  # 12-bit colour in 16-bit samples, lossless
    vs = out.add_stream("ffv1", rate=25)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "rgb48le"
    for i in range(3):
        f = av.VideoFrame.from_ndarray(colour_scene().astype(np.uint16) << 4, format="rgb48le")
        f.pts = i
        for pk in vs.encode(f):
            out.mux(pk)
    for pk in vs.encode():
        out.mux(pk)
    out.close()
    frames = list(open_source(str(tmp_path / "rgb48.mkv"), color_frames="pass"))
    assert len(frames) == 3 and all(np.array_equal(f.color, colour_scene()) for f in frames)
    fixed = list(open_source(str(tmp_path / "rgb48.mkv"), color_frames="pass", input_bits=16))  # as asked: the top 8 of 16 bits
    assert np.array_equal(fixed[0].color, colour_scene() >> 4)


def test_colorize_mode_says_once_that_pass_would_keep_the_colour(caplog):
    caplog.set_level(logging.WARNING, "nirvision.io.color_frames")
    frames = ColorFrames("colorize", name="clip.mp4", fps=25)
    assert verdicts(frames, "g" * 30 + "c" * 60) == "c" * 90
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "clip.mp4: frame 50 is in colour" in said[0] and "--color-frames pass" in said[0]


def test_a_video_from_nir_to_colour_and_back(tmp_path):
    clip = tmp_path / "day.mp4"
    kinds = "g" * 10 + "c" * 20 + "g" * 10
    write_clip(clip, kinds)
    sink, backend = RecordingSink(), StubBackend()
    summary = Engine(open_source(str(clip), color_frames="pass"), [sink], backend).run()
    assert summary["frames_in"] == summary["frames_out"] == 40
    # the switch to colour comes with its fifth frame (0.2 s at 25 fps), the switch back too
    assert summary["passed"] == 20 and backend.calls == 20
    assert [index for index, _, _ in sink.written] == list(range(40))
    for index, rgb, nir in sink.written:
        passed = 14 <= index < 34  # the fifth frame of each kind switches
        stub = np.stack([nir, 255 - nir, nir // 2], axis=-1)
        assert np.array_equal(rgb, stub) != passed, index
        if passed and kinds[index] == "c":  # the camera's colours, as decoded (within H.264's loss)
            assert np.abs(rgb.astype(int) - colour_scene(shift=index)).mean() < 8, index
        if passed and kinds[index] == "g":  # a gray frame in the colour verdict goes out gray
            assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.abs(rgb[..., 0].astype(int) - nir).max() <= 2
    # the default colorizes every frame
    backend = StubBackend()
    summary = Engine(open_source(str(clip)), [RecordingSink()], backend).run()
    assert summary["passed"] == 0 and backend.calls == 40


def test_an_image_folder_passes_its_colour_pictures_bit_for_bit(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "1_night.png"), gray_scene())
    cv2.imwrite(str(src / "2_day.png"), cv2.cvtColor(colour_scene(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / "3_day16.png"), cv2.cvtColor(colour_scene(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    cv2.imwrite(str(src / "4_day12.png"), cv2.cvtColor(colour_scene(), cv2.COLOR_RGB2BGR).astype(np.uint16) << 4)  # after a 16-bit one
    result = run_cli(["colorize", "in", "-o", "out", "--color-frames", "pass", "--model", str(tiny_model), "--threads", "1",
                      "--no-progress", "--stats-json", "s.json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 in colour, passed through" in result.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_out"] == 4 and stats["passed"] == 3
    for name in ("2_day.png", "3_day16.png", "4_day12.png"):
        assert np.array_equal(cv2.imread(str(tmp_path / "out" / name))[..., ::-1], colour_scene()), name
    night = cv2.imread(str(tmp_path / "out" / "1_night.png"))
    assert night.shape == (48, 64, 3) and not np.array_equal(night[..., 0], gray_scene())  # colorized by the model


def test_cli_pass_keeps_timestamps_and_counts(tmp_path, tiny_model):
    write_clip(tmp_path / "day.mp4", "g" * 10 + "c" * 15)
    result = run_cli(["colorize", "day.mp4", "-o", "out.mp4", "--color-frames", "pass", "--model", str(tiny_model), "--threads", "1",
                      "--no-progress", "--stats-json", "s.json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    video = read_video(tmp_path / "out.mp4")
    assert len(video["times"]) == stats["frames_out"] == 25 and stats["passed"] == 11
    assert video["times"] == pytest.approx([i / 25 for i in range(25)])
    assert np.abs(video["left"][24].astype(int) - colour_scene(shift=24)).mean() < 10  # encoded twice: still the day's colours
    with av.open(str(tmp_path / "out.mp4")) as c:  # the output says which colours are predicted
        assert "where recorded in near-infrared" in c.metadata["comment"] and "frames recorded in colour are kept as recorded" in c.metadata["comment"]


def test_a_batch_counts_the_frames_passed_through(tmp_path, tiny_model):
    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "night.mp4", "g" * 6)
    write_clip(tmp_path / "in" / "day.mp4", "c" * 7)
    result = run_cli(["colorize", "in", "-o", "out", "--color-frames", "pass", "--model", str(tiny_model), "--threads", "1",
                      "--no-progress", "--stats-json", "s.json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 of 2 videos colorized (13 frames, 7 of them in colour, passed through)" in result.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_out"] == 13 and stats["passed"] == 7 and sorted(f["passed"] for f in stats["files"]) == [0, 7]


def test_bad_values_are_refused(tmp_path, tiny_model):
    write_clip(tmp_path / "day.mp4", "gc")
    result = run_cli(["colorize", "day.mp4", "-o", "out.mp4", "--color-frames", "keep", "--model", str(tiny_model)], cwd=tmp_path)
    assert result.returncode == 2 and "--color-frames" in result.stderr and "'keep'" in result.stderr
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(InputError, match=r"color_frames 'keep': expected one of colorize, pass"):
        open_source(str(tmp_path / "day.mp4"), color_frames="keep")
    from nirvision.api import Colorizer

    with Colorizer.load(model=str(tiny_model), threads=1) as colorizer:
        with pytest.raises(InputError, match=r"colorize_video: color_frames 'yes'"):
            colorizer.colorize_video(tmp_path / "day.mp4", tmp_path / "api.mp4", color_frames="yes")
        assert not (tmp_path / "api.mp4").exists()
        summary = colorizer.colorize_video(tmp_path / "day.mp4", tmp_path / "api.mp4", color_frames="pass")
    assert summary["frames_out"] == 2 and summary["passed"] == 0  # the first frame decides: NIR; one colour frame is no switch


def test_a_colour_image_of_another_size_than_its_frame_is_refused():
    class Mismatched(ListSource):
        def __iter__(self):
            for frame in super().__iter__():
                frame.color = np.zeros((48, 60, 3), np.uint8)
                yield frame

    sink = RecordingSink()
    with pytest.raises(ValueError, match=r"list: frame 0: its colour image is uint8 \(48, 60, 3\), expected uint8 \(48, 64, 3\)"):
        Engine(Mismatched([np.zeros((48, 64), np.uint8)]), [sink], StubBackend()).run()
    assert sink.written == []


def test_a_camera_by_day_passes_its_bgr_frames_as_rgb(tmp_path, monkeypatch):
    from nirvision.io import camera_source

    day = cv2.cvtColor(colour_scene(24, 32), cv2.COLOR_RGB2BGR)
    night = cv2.cvtColor(gray_scene(24, 32), cv2.COLOR_GRAY2BGR)  # a camera in black and white still sends BGR

    class Capture:
        frames = [night] * 2 + [day] * 8

        def __init__(self, *args):
            pass

        def isOpened(self):
            return True

        def get(self, prop):
            return {cv2.CAP_PROP_FRAME_WIDTH: 32, cv2.CAP_PROP_FRAME_HEIGHT: 24, cv2.CAP_PROP_FPS: 10}.get(prop, 0)

        def read(self):
            return (True, Capture.frames.pop(0).copy()) if Capture.frames else (False, None)

        def set(self, *args):
            return True

        def release(self):
            pass

    device = tmp_path / "video0"
    device.write_text("")
    monkeypatch.setattr(camera_source, "camera_device", lambda spec: device)
    monkeypatch.setattr(camera_source.cv2, "VideoCapture", Capture)
    frames = list(camera_source.CameraSource("0", max_frames=10, color_frames="pass"))
    # 10 fps: the second colour frame (0.2 s) switches
    assert [f.color is not None for f in frames] == [False] * 3 + [True] * 7
    assert all(np.array_equal(f.color, colour_scene(24, 32)) for f in frames[3:])
    assert frames[5].image.shape == (24, 32)
