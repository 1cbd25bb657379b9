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
