"""The artefact cache: keys change with every part, bad entries are rebuilt, not trusted."""
from __future__ import annotations

import json
import logging
import os
import tempfile

import pytest
import torch

from nirvision.errors import InputError
from nirvision.runtime import cache as cache_module
from nirvision.runtime.cache import ArtefactCache, ArtefactKey, default_cache_dir, weights_hash

BASE = ArtefactKey(kind="onnx", weights="w" * 64, shape=(1, 1, 64, 64), precision="fp32", gpu="cpu",
                   torch="2.13.0", tensorrt="none", torch_tensorrt="none", onnxruntime="1.32.0", extra="opset17")


@pytest.mark.parametrize("field,value", [
    ("kind", "tensorrt"), ("weights", "v" * 64), ("shape", (1, 1, 64, 128)), ("shape", (2, 1, 64, 64)),
    ("precision", "fp16"), ("gpu", "NVIDIA H100"), ("torch", "2.14.0"), ("tensorrt", "11.0"),
    ("torch_tensorrt", "2.13.0"), ("onnxruntime", "1.33.0"), ("extra", "opset18"),
])
def test_key_changes_with_each_part(field, value):
    assert BASE.with_(**{field: value}).digest != BASE.digest


def test_key_is_stable_and_defaults_record_installed_versions():
    assert BASE.with_().digest == BASE.digest
    key = ArtefactKey(kind="onnx", weights="w", shape=(1, 1, 8, 8), precision="fp32")
    assert key.torch == torch.__version__
    try:
        import onnxruntime
    except ImportError:
        assert key.onnxruntime == "none"
    else:
        assert key.onnxruntime == onnxruntime.__version__


def test_weights_hash_follows_values_not_identity():
    a, b = torch.nn.Conv2d(1, 2, 3), torch.nn.Conv2d(1, 2, 3)
    b.load_state_dict(a.state_dict())
    assert weights_hash(a) == weights_hash(b)
    with torch.no_grad():
        b.bias[0] += 1e-6
    assert weights_hash(a) != weights_hash(b)
    bn = torch.nn.BatchNorm2d(2)  # holds a 0-d integer buffer
    assert len(weights_hash(bn)) == 64


def test_default_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NIRVISION_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "nirvision")


class Builder:
    def __init__(self, payload: bytes = b"artefact"):
        self.calls = 0
        self.payload = payload

    def __call__(self, path):
        self.calls += 1
        path.write_bytes(self.payload)


def _deny_writes_under(monkeypatch, folder):
    """os.access as for a user who may not write under ``folder`` (tests may run as root,
    for whom the mode bits would not stop a write)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and str(path).startswith(str(folder)):
            return False
        return real(path, mode, *args, **kwargs)
    monkeypatch.setattr(cache_module.os, "access", access)


def test_an_unwritable_default_cache_falls_back_to_a_private_temp_folder(monkeypatch, tmp_path, caplog):
    # a service account: $HOME does not exist or is not its own, and no $NIRVISION_CACHE
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), temp.mkdir()
    monkeypatch.delenv("NIRVISION_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    _deny_writes_under(monkeypatch, home)
    with caplog.at_level(logging.WARNING, logger="nirvision.runtime.cache"):
        cache = ArtefactCache()
    assert cache.root == temp / f"nirvision-cache-{os.getuid()}" and cache.writable
    assert (cache.root.stat().st_mode & 0o777) == 0o700
    assert "cannot be written" in caplog.text and "$NIRVISION_CACHE" in caplog.text and str(home / ".cache" / "nirvision") in caplog.text
    path = cache.get_or_build(BASE, ".bin", Builder())
    assert path.parent.parent == cache.root and path.read_bytes() == b"artefact"
    assert not (home / ".cache").exists()
    # a folder of that name that is open to others (or another user's) is not used
    cache.root.chmod(0o755)
    other = ArtefactCache()
    assert other.root != cache.root and other.root.parent == temp and (other.root.stat().st_mode & 0o077) == 0


def test_a_named_unwritable_cache_serves_what_it_holds_and_refuses_to_build(monkeypatch, tmp_path):
    built = ArtefactCache(tmp_path / "c")
    held = built.get_or_build(BASE, ".bin", Builder())
    _deny_writes_under(monkeypatch, tmp_path / "c")
    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "c"))
    cache = ArtefactCache()  # named by $NIRVISION_CACHE: no fallback, the user chose it
    assert cache.root == tmp_path / "c" and not cache.writable
    build = Builder()
    assert cache.get_or_build(BASE, ".bin", build) == held and build.calls == 0  # exported ahead of time
    with pytest.raises(InputError, match=r"artefact cache .*/c: cannot write the onnx model for input 1x1x64x128 .*NIRVISION_CACHE.*nirvision export"):
        cache.get_or_build(BASE.with_(shape=(1, 1, 64, 128)), ".bin", build)
    assert build.calls == 0


def test_get_or_build_builds_once_then_hits(tmp_path):
    cache, build = ArtefactCache(tmp_path), Builder()
    p1 = cache.get_or_build(BASE, ".bin", build)
    p2 = cache.get_or_build(BASE, ".bin", build)
    assert p1 == p2 and build.calls == 1 and p1.read_bytes() == b"artefact"
    other = cache.get_or_build(BASE.with_(precision="int8"), ".bin", build)
    assert other != p1 and build.calls == 2


def test_corrupt_file_is_rebuilt(tmp_path):
    cache, build = ArtefactCache(tmp_path), Builder()
    path = cache.get_or_build(BASE, ".bin", build)
    path.write_bytes(b"artefXct")  # same size, different bytes
    assert cache.get_or_build(BASE, ".bin", build).read_bytes() == b"artefact"
    assert build.calls == 2
    path.write_bytes(b"")  # truncated
    cache.get_or_build(BASE, ".bin", build)
    assert build.calls == 3


@pytest.mark.parametrize("damage", ["garbage", "missing", "other-key"])
def test_bad_sidecar_is_rebuilt(tmp_path, damage):
    cache, build = ArtefactCache(tmp_path), Builder()
    path = cache.get_or_build(BASE, ".bin", build)
    meta = path.with_name(path.name + ".json")
    if damage == "garbage":
        meta.write_text("{not json")
    elif damage == "missing":
        meta.unlink()
    else:
        d = json.loads(meta.read_text())
        d["key"]["torch"] = "1.0"
        meta.write_text(json.dumps(d))
    cache.get_or_build(BASE, ".bin", build)
    assert build.calls == 2
    assert json.loads(meta.read_text())["key"] == BASE.to_dict()


def test_entry_failing_validation_is_rebuilt(tmp_path):
    cache, build = ArtefactCache(tmp_path), Builder()
    cache.get_or_build(BASE, ".bin", build)
    seen = []

    def validate(path):
        seen.append(path)
        if len(seen) == 1:
            raise RuntimeError("cannot deserialize")

    cache.get_or_build(BASE, ".bin", build, validate)
    assert build.calls == 2 and len(seen) == 2


def test_failed_build_leaves_nothing(tmp_path):
    cache = ArtefactCache(tmp_path)

    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        cache.get_or_build(BASE, ".bin", broken)
    assert cache.lookup(BASE, ".bin") is None
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("half", ["file", "sidecar"])
def test_a_half_entry_is_a_miss_that_deletes_nothing(tmp_path, half):
    # a file without its sidecar (or the reverse) may be another process's write in progress
    cache, build = ArtefactCache(tmp_path), Builder()
    path = cache.get_or_build(BASE, ".bin", build)
    meta = path.with_name(path.name + ".json")
    (meta if half == "file" else path).unlink()
    assert cache.lookup(BASE, ".bin") is None
    assert (path if half == "file" else meta).is_file()  # left for its writer
    assert cache.get_or_build(BASE, ".bin", build).read_bytes() == b"artefact" and build.calls == 2
    assert json.loads(meta.read_text())["key"] == BASE.to_dict()


def test_a_lookup_during_a_store_leaves_the_new_entry(tmp_path, monkeypatch):
    import nirvision.runtime.cache as cache_mod

    real_replace, seen = cache_mod.os.replace, []

    def replace(src, dst):  # another process looks the key up between the store's renames
        real_replace(src, dst)
        seen.append(ArtefactCache(tmp_path).lookup(BASE, ".bin"))

    monkeypatch.setattr(cache_mod.os, "replace", replace)
    path = ArtefactCache(tmp_path).get_or_build(BASE, ".bin", Builder(), lambda p: p.read_bytes())
    monkeypatch.setattr(cache_mod.os, "replace", real_replace)
    assert seen[0] is None and seen[1] == path  # a miss while half written, then a hit
    assert ArtefactCache(tmp_path).lookup(BASE, ".bin") == path and path.read_bytes() == b"artefact"


def test_an_entry_rewritten_while_checked_is_not_deleted(tmp_path, monkeypatch):
    import nirvision.runtime.cache as cache_mod

    cache = ArtefactCache(tmp_path)
    path = cache.get_or_build(BASE, ".bin", Builder(b"old"))
    meta = path.with_name(path.name + ".json")
    real_sha = cache_mod.file_sha256

    def sha_while_rewritten(p):  # a writer replaces the entry while the reader hashes the file
        meta.unlink()
        p.write_bytes(b"new")
        return real_sha(p)

    monkeypatch.setattr(cache_mod, "file_sha256", sha_while_rewritten)
    assert cache.lookup(BASE, ".bin") is None
    assert path.read_bytes() == b"new"  # the writer's file stays; its sidecar comes next


def test_history_says_what_was_found_and_what_was_built(tmp_path):
    cache = ArtefactCache(tmp_path)
    path = cache.get_or_build(BASE, ".bin", Builder())
    assert cache.get_or_build(BASE, ".bin", Builder()) == path
    first, second = cache.history
    assert (first.path, first.built, second.path, second.built) == (path, True, path, False)
    assert first.seconds >= 0 and second.seconds == 0


def test_a_hit_marks_the_entry_used(tmp_path):
    cache = ArtefactCache(tmp_path)
    path = cache.get_or_build(BASE, ".bin", Builder())
    month_ago = path.stat().st_mtime - 30 * 86400
    for p in (path, path.with_name(path.name + ".json")):
        os.utime(p, (month_ago, month_ago))
    (entry,) = cache.entries()
    assert entry.used == month_ago
    assert cache.lookup(BASE, ".bin") == path
    (entry,) = cache.entries()
    assert entry.used > month_ago + 29 * 86400  # found now: used now
    assert path.read_bytes() == b"artefact" and cache.lookup(BASE, ".bin") == path  # and still intact


def _age(path, days, now):
    t = now - days * 86400
    for p in (path, path.with_name(path.name + ".json")):
        if p.exists():
            os.utime(p, (t, t))


def test_entries_and_clear_by_last_use(tmp_path):
    import time

    cache = ArtefactCache(tmp_path)
    now = time.time()
    old = cache.get_or_build(BASE, ".onnx", Builder(b"o" * 1000))
    young = cache.get_or_build(BASE.with_(shape=(1, 1, 48, 64)), ".onnx", Builder(b"y" * 10))
    other_kind = cache.get_or_build(BASE.with_(kind="onnx-int8", precision="int8"), ".onnx", Builder())
    half = cache.path(BASE.with_(shape=(1, 1, 8, 8)), ".onnx")
    half.write_bytes(b"being written")  # a file without its sidecar
    stale_tmp = old.with_name(f".{old.name}.4242.tmp.onnx")
    stale_tmp.write_bytes(b"left by a crash")
    mine = tmp_path / "onnx" / "notes.txt"  # not the cache's: never listed, never removed
    mine.write_text("keep me")
    engines = tmp_path / "ort-trt" / ("a" * 24)  # ONNX Runtime's TensorRT engines: a folder per key
    engines.mkdir(parents=True)
    (engines / "model.engine").write_bytes(b"e" * 100)
    for path, days in ((old, 40), (other_kind, 40), (half, 40), (stale_tmp, 40), (engines / "model.engine", 40), (young, 1)):
        _age(path, days, now)
    os.utime(engines, (now - 40 * 86400,) * 2)

    entries = {e.path: e for e in cache.entries()}
    assert set(entries) == {old, young, other_kind, half, stale_tmp, engines}
    assert (entries[old].kind, entries[old].size, entries[old].precision, entries[old].complete) == ("onnx", "64x64", "fp32", True)
    assert entries[young].size == "64x48" and entries[other_kind].precision == "int8"
    assert entries[old].bytes == 1000 + old.with_name(old.name + ".json").stat().st_size  # the file and its sidecar
    assert entries[engines].bytes == 100 and entries[engines].complete
    assert not entries[half].complete and not entries[stale_tmp].complete
    assert [e.path for e in cache.entries()][-1] == young  # the oldest use first

    removed, kept = cache.clear(older_than_s=30 * 86400, now=now)
    assert {e.path for e in removed} == {old, other_kind, half, stale_tmp, engines}
    assert [e.path for e in kept] == [young]
    assert not old.exists() and not old.with_name(old.name + ".json").exists() and not engines.exists()
    assert young.read_bytes() == b"y" * 10 and mine.read_text() == "keep me"
    assert cache.lookup(BASE.with_(shape=(1, 1, 48, 64)), ".onnx") == young  # what is kept still serves

    # clear: everything, but a half entry of the last hour may be another process's write in progress
    fresh = cache.path(BASE.with_(shape=(1, 1, 16, 16)), ".onnx")
    fresh.write_bytes(b"writing")
    removed, kept = cache.clear()
    assert [e.path for e in removed] == [young] and [e.path for e in kept] == [fresh]
    assert fresh.exists() and mine.exists()


def test_a_cache_this_user_cannot_write_is_not_cleared(monkeypatch, tmp_path):
    ArtefactCache(tmp_path / "c").get_or_build(BASE, ".bin", Builder())
    _deny_writes_under(monkeypatch, tmp_path / "c")
    cache = ArtefactCache(tmp_path / "c")
    with pytest.raises(InputError, match="cannot be cleared, this user cannot write in it"):
        cache.clear()
    assert len(cache.entries()) == 1


def test_describe_cache_says_where_and_what(monkeypatch, tmp_path):
    from nirvision.runtime.cache import describe_cache

    monkeypatch.setenv("NIRVISION_CACHE", str(tmp_path / "c"))
    assert describe_cache() == {"folder": str(tmp_path / "c"), "named_by": "$NIRVISION_CACHE", "writable": True,
                                "runs_use": str(tmp_path / "c"), "entries": 0, "bytes": 0, "kinds": {}, "incomplete": 0}
    cache = ArtefactCache()
    cache.get_or_build(BASE, ".bin", Builder())
    cache.get_or_build(BASE.with_(kind="onnx-u8"), ".bin", Builder())
    d = describe_cache()
    assert d["entries"] == 2 and d["kinds"] == {"onnx": 1, "onnx-u8": 1} and d["bytes"] > 2 * len(b"artefact")
    assert describe_cache(tmp_path / "elsewhere")["named_by"] == "--cache"
    # a default this user cannot write: runs use a private folder under the temporary folder
    monkeypatch.delenv("NIRVISION_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    _deny_writes_under(monkeypatch, tmp_path)
    d = describe_cache()
    assert d["writable"] is False and d["named_by"] == "default"
    assert d["runs_use"] == str(tmp_path / "tmp" / f"nirvision-cache-{os.getuid()}")
    assert not (tmp_path / "tmp").exists()  # it says; it makes nothing
