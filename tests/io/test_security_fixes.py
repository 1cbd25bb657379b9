"""Fixes from the security review: image bombs, output URLs, alias bombs in --config, contact
sheets over source images, /health behind a password, password parameters from the
environment, control characters in file names, and one JPEG a frame for the live view."""
import json
import logging
import struct
import threading
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from tests.io.media import make_clip, wait_for

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def colorize(capsys, *args):
    code = main(["colorize", *map(str, args), "--threads", "1", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def png_bomb(path: Path, w: int, h: int) -> None:
    """A black gray PNG of w x h pixels: a few KB on disk, w * h bytes once decoded."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))


# 1. decompression bombs

def test_an_image_over_the_pixel_limit_is_skipped_before_it_is_decoded(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((48, 64), 90, np.uint8))
    png_bomb(folder / "b.png", 9000, 9000)  # 81 Mpixels from a file of about 80 KB
    assert (folder / "b.png").stat().st_size < 200_000
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: decoded.append(len(data)) or real(data, flags))
    src = open_source(str(folder))
    with caplog.at_level(logging.WARNING):
        frames = list(src)
    assert [f.name for f in frames] == ["a.png"] and src.decode_errors == 1
    assert len(decoded) == 1  # only a.png reached the decoder
    warning = next(r.getMessage() for r in caplog.records if "b.png" in r.getMessage())
    assert "9000x9000" in warning and "81 Mpixels" in warning and "limit of 67 Mpixels" in warning and "skipped (1 so far)" in warning


def test_the_pixel_limit_can_be_lowered_and_a_folder_of_only_large_images_is_refused(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((48, 64), np.uint8))
    src = open_source(str(folder), max_pixels=1000)
    with pytest.raises(InputError, match="none of its 1 files is a readable image"):
        list(src)
    assert src.decode_errors == 1


def test_image_headers_give_the_size_opencv_decodes():
    from nirvision.io.image_source import image_size

    rng = np.random.default_rng(0)
    for shape in ((31, 17), (48, 64, 3), (5, 300, 4)):
        img = (rng.random(shape) * 255).astype(np.uint8)
        for ext, params in ((".png", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".tif", []), (".bmp", []), (".webp", []),
                            (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".pgm" if img.ndim == 2 else ".ppm", [])):
            if (ext == ".jpg" or ext == ".ppm") and img.ndim == 3 and img.shape[2] == 4:
                continue
            ok, buf = cv2.imencode(ext, img, params)
            assert ok
            decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            assert image_size(memoryview(buf.reshape(-1))) == (decoded.shape[1], decoded.shape[0]), (ext, params, shape)
    assert image_size(b"GIF89a....") is None and image_size(b"\x89PNG\r\n\x1a\n") is None  # not a type taken; cut short


def test_a_video_that_declares_frames_over_the_limit_is_refused_at_open(tmp_path):
    make_clip(tmp_path / "v.mp4", [0, 40])
    with pytest.raises(InputError, match=r"video file .*v\.mp4: 64x48 pixels .*over the limit"):
        open_source(str(tmp_path / "v.mp4"), max_pixels=1000)
    with open_source(str(tmp_path / "v.mp4")) as src:  # the default limit leaves it alone
        assert len(list(src)) == 2


# 2. output URLs other than http://

@pytest.mark.parametrize("url", ["rtsp://admin:hunter2@nvr.local:554/live", "rtmp://admin:hunter2@nvr.local/live/cam.mp4",
                                 "ftp://u:hunter2@h/x.mp4", "https://u:hunter2@0.0.0.0:8443"])
def test_an_output_url_other_than_http_is_refused_with_its_password_masked(tmp_path, tiny_model, capsys, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    code, _, err = colorize(capsys, "synthetic:64x64@5:3", "-o", url, "--model", tiny_model, "--stats-json", "rs.json")
    assert code == 2, err
    assert "hunter2" not in err and "hunter2" not in Path("rs.json").read_text()
    assert ":***@" in err and ("expected http://" in err if url.startswith("https") else "is not an output nirvision writes" in err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rs.json", "tiny.yaml"]  # no folder named after the URL
    with pytest.raises(InputError) as exc:
        open_sink(url, open_source("synthetic:64x64@5:3").info)
    assert "hunter2" not in str(exc.value)


def test_output_errors_mask_passwords(tmp_path):
    info = open_source("synthetic:64x64@5:3").info
    with pytest.raises(InputError) as exc:
        open_sink(str(tmp_path / "x?password=hunter2.abc"), info)
    assert "unknown output type" in str(exc.value) and "hunter2" not in str(exc.value)
    from nirvision.io.specs import check_not_source

    src = tmp_path / "in&password=hunter2.mp4"
    make_clip(src, [0])
    with pytest.raises(InputError, match="is the source itself") as exc:
        check_not_source([str(src)], str(src))
    assert "hunter2" not in str(exc.value)


# 3. alias bombs in --config

def alias_bomb(levels: int) -> str:
    names = "abcdefghij"
    parts = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    parts += [f"&{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def test_an_alias_bomb_in_config_is_refused_with_a_short_message(tmp_path, capsys):
    cfg = tmp_path / "lol.yaml"
    cfg.write_text(f"crf: {alias_bomb(7)}\nsource: synthetic:64x64@5:3\noutput: {tmp_path / 'n.mp4'}\n")  # 9^7 strings: 40 MB as repr
    code, _, err = colorize(capsys, "--config", cfg)
    assert code == 2 and "key 'crf': expected one value, got [['lol', 'lol'" in err
    assert len(err) < 600 and err.rstrip().endswith("...")
    top = tmp_path / "top.yaml"
    top.write_text(f"- {alias_bomb(7)}\n")
    code, _, err = colorize(capsys, "--config", top)
    assert code == 2 and "expected a mapping of nirvision colorize options" in err and len(err) < 600


def test_a_long_value_in_config_is_cut_with_its_password_masked(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: [[rtsp://u:hunter2@cam/" + "x" * 1000 + "]]\n")
    code, _, err = colorize(capsys, "--config", cfg, "-o", tmp_path / "o.mp4")
    assert code == 2 and "rtsp://u:***@cam/xxx" in err and "hunter2" not in err and len(err) < 600


# 4. contact sheets among the source's images

def image_folder(folder: Path, names=("a.png", "b.png")) -> Path:
    folder.mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((48, 64), 40 * i, np.uint8))
    return folder


def test_a_contact_sheet_that_is_a_source_image_is_refused(tmp_path, tiny_model, capsys):
    snaps = image_folder(tmp_path / "snaps", ("a.png", "out_sheet.png"))
    before = (snaps / "out_sheet.png").read_bytes()
    code, _, err = colorize(capsys, snaps, "-o", snaps / "out.mp4", "--contact-sheet", "--fps", "5", "--model", tiny_model)
    assert code == 2 and f"contact sheet {snaps / 'out_sheet.png'}: is one of the source's images" in err, err
    assert (snaps / "out_sheet.png").read_bytes() == before and not (snaps / "out.mp4").exists()


def test_a_contact_sheet_that_the_next_run_would_read_is_refused(tmp_path, tiny_model, capsys, monkeypatch):
    image_folder(tmp_path / "snaps")
    monkeypatch.chdir(tmp_path / "snaps")
    code, _, err = colorize(capsys, "*.png", "-o", "timelapse.mp4", "--contact-sheet", "--fps", "5", "--model", tiny_model)
    assert code == 2 and "contact sheet timelapse_sheet.png: matches the source '*.png'" in err, err
    assert sorted(p.name for p in Path(".").iterdir()) == ["a.png", "b.png"]
    # outside the images' reach it is written
    code, _, err = colorize(capsys, "*.png", "-o", tmp_path / "timelapse.mp4", "--contact-sheet", "--fps", "5", "--model", tiny_model)
    assert code == 0, err
    assert (tmp_path / "timelapse_sheet.png").is_file()


def test_the_api_refuses_a_sheet_among_the_source_images(tmp_path):
    from nirvision.io.sheet_sink import sheets_for

    snaps = image_folder(tmp_path / "snaps", ("a.png", "x_sheet.png"))
    info = open_source(str(snaps)).info
    with pytest.raises(InputError, match="is one of the source's images"):
        sheets_for([str(snaps / "x.mp4")], info)
    assert [s.path for s in sheets_for([str(tmp_path / "x.mp4")], info)] == [tmp_path / "x_sheet.png"]


# 5. /health behind a password

def health(url: str) -> tuple[int, str]:
    try:
        with NO_PROXY.open(url + "health", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("login", [True, False])
def test_health_names_no_camera_when_the_view_has_a_password(monkeypatch, login):
    import nirvision.io.http_sink as http_sink

    monkeypatch.setattr(http_sink, "STALE_S", 0.0)  # unhealthy at once: no frame yet
    sink = http_sink.HttpViewSink("http://op:VIEWPW@127.0.0.1:0" if login else "http://127.0.0.1:0")
    sink.waiting = "connecting to rtsp://admin:***@10.1.2.3:554/Streaming/Channels/101"
    try:
        code, body = health(sink.url)
    finally:
        sink.close()
    assert code == 503 and body.startswith("no frame yet after")
    if login:
        assert "10.1.2.3" not in body and "admin" not in body and "Streaming" not in body and "(waiting for its source)" in body
    else:
        assert "(connecting to rtsp://admin:***@10.1.2.3:554/Streaming/Channels/101)" in body


# 6. ${NAME} in a password parameter

def test_a_password_parameter_from_the_environment_is_percent_encoded(monkeypatch):
    from urllib.parse import parse_qs, urlsplit

    from nirvision.cli.options_file import _expand

    monkeypatch.setenv("NV_TEST_PW", "Tr0ub&dor#3")
    url = _expand("rtsp://127.0.0.1:9/test?user=${NV_TEST_PW}&password=${NV_TEST_PW}&pwd=${NV_TEST_PW}", "q.yaml", "source")
    assert url == "rtsp://127.0.0.1:9/test?user=Tr0ub&dor#3&password=Tr0ub%26dor%233&pwd=Tr0ub%26dor%233"  # user= is no secret
    query = urlsplit(url.replace("user=Tr0ub&dor#3&", "")).query
    assert parse_qs(query) == {"password": ["Tr0ub&dor#3"], "pwd": ["Tr0ub&dor#3"]}
    assert _expand("out/password=${NV_TEST_PW}.mp4", "q.yaml", "output") == "out/password=Tr0ub&dor#3.mp4"  # a path, not a URL


def test_a_password_parameter_from_the_environment_stays_out_of_errors_and_stats(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.setenv("NV_TEST_PW", "Tr0ub&dor#3")
    cfg = tmp_path / "q.yaml"
    cfg.write_text(f"source: rtsp://127.0.0.1:9/test?user=admin&password=${{NV_TEST_PW}}\noutput: {tmp_path / 'q.mp4'}\n"
                   f"stats-json: {tmp_path / 'q.json'}\n")
    code, _, err = colorize(capsys, "--config", cfg, "--model", tiny_model, "--open-timeout", "0.5", "--reconnect", "0")
    stats = (tmp_path / "q.json").read_text()
    assert code == 2 and "password=***" in err and json.loads(stats)["stopped_by"] == "error"
    for text in (err, stats):
        assert "dor" not in text and "Tr0ub" not in text


def test_redact_masks_a_password_parameter_whole():
    from nirvision.io.redact import redact_url

    assert redact_url("rtsp://h/test?user=admin&password=Tr0ub&dor#3") == "rtsp://h/test?user=admin&password=***"
    assert redact_url("rtsp://h/user=admin&password=secret&channel=1") == "rtsp://h/user=admin&password=***&channel=1"
    assert redact_url("rtsp://h/x?pwd=a;b&c=1: refused") == "rtsp://h/x?pwd=***&c=1: refused"


# 8. control characters in file names

def test_file_names_with_control_characters_are_printed_escaped(tmp_path, tiny_model, capsys):
    vids = tmp_path / "vids"
    vids.mkdir()
    make_clip(vids / "esc\x1b[31mRED\rFAKE.mp4", [0, 40])
    make_clip(vids / "new\nline.mp4", [0, 40])
    (vids / "bad\nname.mkv").write_bytes(b"not a video")
    code, _, err = colorize(capsys, vids, "-o", tmp_path / "out", "--model", tiny_model)
    assert code == 1  # the broken one fails, the others run
    assert "\x1b" not in err and "\r" not in err
    assert "esc\\x1b[31mRED\\rFAKE.mp4 ->" in err and "new\\nline.mp4 ->" in err and "bad\\nname.mkv" in err
    assert all(line.startswith(("nirvision colorize: ", "  ")) for line in err.splitlines()), err  # no line begun by a name


def test_an_image_name_with_control_characters_is_escaped_in_warnings(tmp_path, caplog):
    folder = image_folder(tmp_path / "in", ("a.png",))
    (folder / "b\n\x1b[2Jc.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING):
        assert len(list(open_source(str(folder)))) == 1
    assert "b\\n\\x1b[2Jc.png: not a readable image" in caplog.text and "\x1b" not in caplog.text


def test_printable_is_shared_with_the_live_view():
    from nirvision.io.http_sink import printable as view_printable
    from nirvision.io.redact import printable

    assert printable("a\nb\x1b[31m\tc é") == "a\\nb\\x1b[31m\\tc é" and printable("x" * 300) == "x" * 300
    assert view_printable("x" * 300) == "x" * 200 + "..."


# 9. one JPEG a frame for every viewer

def test_each_frame_is_encoded_once_however_many_viewers(monkeypatch):
    import nirvision.io.http_sink as http_sink

    calls, release = [], threading.Event()
    real = cv2.imencode

    def slow_encode(*args, **kwargs):  # held until every viewer has asked for the frame
        calls.append(threading.get_ident())
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(http_sink.cv2, "imencode", slow_encode)
    latest = http_sink._Latest()
    viewers = 8
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(latest.after(0))) for _ in range(viewers)]
    for t in threads:
        t.start()
    latest.put(np.zeros((48, 64, 3), np.uint8))
    # the others wait for the encoding viewer (without the fix each of them encodes: all enter imencode)
    wait_for(lambda: len(calls) == viewers or (len(calls) == 1 and len(latest.cond._waiters) == viewers - 1), 60, "the viewers to ask")
    release.set()
    for t in threads:
        t.join(60)
    assert len(calls) == 1
    assert len(got) == viewers and len({(seq, jpeg) for seq, jpeg in got}) == 1 and got[0][0] == 1
    latest.put(np.ones((48, 64, 3), np.uint8))  # the next frame: encoded once more
    assert latest.after(1)[0] == 2 and latest.after(1)[0] == 2 and len(calls) == 2
    latest.close()


def test_the_api_refuses_the_sheet_before_an_output_is_replaced(tmp_path, tiny_model):
    from nirvision.api import Colorizer

    snaps = image_folder(tmp_path / "snaps", ("a.png", "out_sheet.png"))
    out = tmp_path / "snaps" / "out.mp4"
    out.write_bytes(b"an earlier run's video")
    colorizer = Colorizer.load(model=str(tiny_model), device="cpu", precision="fp32")
    with pytest.raises(InputError, match="is one of the source's images"):
        colorizer.colorize_video(str(snaps / "*.png"), out, contact_sheet=True, fps=5)
    assert out.read_bytes() == b"an earlier run's video"  # neither truncated nor claimed
    assert not (snaps / ".out.mp4.nirvision-lock").exists()
