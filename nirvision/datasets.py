"""Paired NIR/RGB image folders (``DIR/nir/NAME.png`` + ``DIR/rgb/NAME.png``) and their splits.

Used by ``nirvision evaluate`` and by the training module. Problems are reported, never
papered over: a missing folder, a NIR image without its RGB partner (or the reverse), an
unreadable file or a pair of different sizes is an error, or, with ``skip_bad=True``, a
logged and counted skip.
"""
from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class PairedSet:
    names: list[str]
    nir: list[np.ndarray]  # H x W uint8
    rgb: list[np.ndarray]  # H x W x 3 uint8, RGB order
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    root: str = ""  # the folder the pairs were read from (for messages)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, names: list[str]) -> "PairedSet":
        index = {n: i for i, n in enumerate(self.names)}
        return PairedSet(list(names), [self.nir[index[n]] for n in names], [self.rgb[index[n]] for n in names], root=self.root)


def _images(folder: Path) -> dict[str, Path]:
    """Name (without its type) -> image file; two images of one name are an error (which pairs with which?)."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS:
            continue
        if p.stem in found:
            raise InputError(f"{found[p.stem]} and {p.name}: two images named {p.stem!r}; expected one image per name in {folder}")
        found[p.stem] = p
    return found


def read_nir_raw(path: Path) -> np.ndarray:
    """One channel as stored: uint8, or uint16 for 16-bit files (``load_paired`` brings a folder's
    16-bit images to 8 bits with one depth for all of them)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY) if img.shape[2] >= 3 else img[:, :, 0]
    return img


def read_gray(path: Path, depth=None) -> np.ndarray:
    """One uint8 channel; 16-bit (Mono10 / Mono12 in 16 bits) by ``depth`` (a ``SampleDepth``:
    one scale for many files) or, without one, by this image's own largest value."""
    img = read_nir_raw(path)
    if img.dtype == np.uint16:
        from .runtime.frames import SampleDepth

        img = (depth or SampleDepth(name=str(path), quiet=True)).to_uint8(img)
    return img


def nir_depth(images: list[np.ndarray], input_bits: int | str | None, where: str):
    """The one ``SampleDepth`` a folder's 16-bit NIR images are read by, as colorize reads one
    stream (``--input-bits``): ``input_bits`` where given, else (auto) the fewest of 10, 12, 14
    and 16 bits that hold the largest value of all of them; a dark Mono12 image then stays dark
    instead of being read as 10-bit and brightened 4x. Said when below 16 bits."""
    from .runtime.frames import SampleDepth, bits_for, check_input_bits

    fixed = check_input_bits(input_bits)
    wide = [im for im in images if im.dtype == np.uint16]
    if fixed is not None or not wide:
        return SampleDepth(fixed, name=where)  # a fixed depth says when values above it clip
    top = max(int(im.max()) if im.size else 0 for im in wide)
    bits = bits_for(top)
    if bits < 16:
        log.warning("%s: %d 16-bit image(s) with values up to %d: all read as %d-bit, one scale for the folder "
                    "(data.input_bits / --input-bits fixes the depth)", where, len(wide), top, bits)
    return SampleDepth(bits, name=where, quiet=True)


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_paired(root: str | Path, size: tuple[int, int] | None = None, skip_bad: bool = False, names: list[str] | None = None,
                input_bits: int | str | None = None, size_from: str | None = None) -> PairedSet:
    """Read every pair under ``root``; ``size`` (H, W) demands that size of each image (set by
    ``size_from``, the option a wrong size's message names); 16-bit NIR images are all read at
    one depth (``nir_depth``: ``input_bits``, or auto from the largest value of the pairs read)."""
    from .runtime.frames import check_input_bits

    check_input_bits(input_bits)  # before any image is read
    root = Path(root)
    nir_dir, rgb_dir = root / "nir", root / "rgb"
    for d in (root, nir_dir, rgb_dir):
        if not d.is_dir():
            raise InputError(f"{d}: folder not found (expected DIR/nir/NAME.png and DIR/rgb/NAME.png)")
    nirs, rgbs = _images(nir_dir), _images(rgb_dir)
    only_nir, only_rgb = sorted(set(nirs) - set(rgbs)), sorted(set(rgbs) - set(nirs))
    skipped: dict[str, str] = {}
    if (only_nir or only_rgb) and not skip_bad:
        raise InputError(f"{root}: unpaired images: NIR without RGB: {only_nir[:5]}{'...' if len(only_nir) > 5 else ''}; RGB without NIR: {only_rgb[:5]}{'...' if len(only_rgb) > 5 else ''}")
    for n in only_nir + only_rgb:
        skipped[n] = "no partner image"
    wanted = sorted(set(nirs) & set(rgbs)) if names is None else list(names)
    out = PairedSet([], [], [], skipped, root=str(root))
    gray: list[str] = []  # "RGB" images without colour
    for name in wanted:
        if name not in nirs or name not in rgbs:
            raise InputError(f"{root}: no pair named {name!r}")
        try:
            nir, rgb = read_nir_raw(nirs[name]), read_rgb(rgbs[name])
            if nir.shape != rgb.shape[:2]:
                raise InputError(f"{root}: pair {name!r} differs in size: NIR {nir.shape[1]}x{nir.shape[0]}, RGB {rgb.shape[1]}x{rgb.shape[0]}")
            if size is not None and nir.shape != tuple(size):
                raise InputError(f"{root}: pair {name!r} is {nir.shape[1]}x{nir.shape[0]}, expected {size[1]}x{size[0]}"
                                 + size_advice(nir.shape, size, size_from))
        except InputError as exc:
            if not skip_bad:
                raise
            skipped[name] = str(exc)
            continue
        out.names.append(name)
        out.nir.append(nir)
        out.rgb.append(rgb)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            gray.append(name)
    for name, why in skipped.items():
        log.warning("skipped %s: %s", name, why)
    if gray:
        log.warning("%s: %d of the rgb/ images hold no colour (%s%s): colour metrics (AE) and colour training mean little for them",
                    rgb_dir, len(gray), ", ".join(gray[:3]), ", ..." if len(gray) > 3 else "")
    if not out.names:
        raise InputError(f"{root}: no usable image pairs")
    depth = nir_depth(out.nir, input_bits, str(nir_dir))
    out.nir = [depth.to_uint8(im) if im.dtype == np.uint16 else im for im in out.nir]
    return out


def size_advice(shape: tuple[int, ...], size: tuple[int, int], size_from: str | None) -> str:
    """What to do about an image of ``shape`` where ``size_from`` (a square side, H = W) asks for ``size``."""
    if not size_from:
        return ""
    h, w = shape[:2]
    if h == w:
        return f" ({size_from}); every image must be that size: set {size_from}: {h} if all are {w}x{h}, or crop or resize them"
    return (f" ({size_from}); training takes square images of one size only ({size_from} is both height and width): "
            f"crop or resize them to {size[1]}x{size[0]} first")


_NAME = re.compile(r"^(?P<cat>.*?)[_-]?(?P<num>\d+)$")


def category(name: str) -> str:
    """The prefix before a name's number (``forest_0012`` -> ``forest``); the whole name if none."""
    m = _NAME.match(name)
    return m.group("cat") if m else name


def photo_groups(names: list[str], group: int = 1) -> dict[str, list[list[str]]]:
    """Names by category, in groups of ``group`` consecutive numbers (1: each name alone)."""
    cats: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for n in names:
        m = _NAME.match(n)
        cat, num = (m.group("cat"), int(m.group("num"))) if m else (n, 0)
        cats[cat][num // max(1, group)].append(n)
    return {c: [sorted(g) for _, g in sorted(groups.items())] for c, groups in cats.items()}


@dataclass(frozen=True)
class Overlap:
    """Two images that show the same scene: ``b`` shifted by (dy, dx) pixels lies on ``a``."""

    a: str
    b: str
    dy: int
    dx: int
    score: float  # normalised cross-correlation of their fine detail over the shared part
    shared: float  # the shared part, as a fraction of the image


def _high_pass(img: np.ndarray, sigma: float) -> np.ndarray:
    img = img.astype(np.float32)
    return img - cv2.GaussianBlur(img, (0, 0), sigma)


def _coarse_matches(images: list[np.ndarray], min_shared: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every pair (i < j) of equal-size float images: the best normalised cross-correlation
    over all shifts that share at least ``min_shared`` of the image, and that shift (dy, dx).
    Computed for all shifts at once with FFTs (masked NCC: sums over the shared part only)."""
    import torch

    x = torch.from_numpy(np.stack(images)).double()
    n, h, w = x.shape
    size = (2 * h, 2 * w)  # zero-padded: linear, not circular, correlation

    def corr(fa, fb):  # sum over p of a(p) b(p - s), for every shift s
        return torch.fft.irfft2(fa * fb.conj(), s=size)

    fx, fx2 = torch.fft.rfft2(x, s=size), torch.fft.rfft2(x * x, s=size)
    fm = torch.fft.rfft2(torch.ones(h, w, dtype=torch.float64), s=size)
    count = corr(fm, fm).round()
    valid = count >= min_shared * h * w
    count = count.clamp(min=1.0)
    sum_a, sum_b = corr(fx, fm), corr(fm, fx)  # per image: its sum over the shared part when it is a (or b)
    sq_a, sq_b = corr(fx2, fm), corr(fm, fx2)
    var_a = (sq_a - sum_a**2 / count).clamp(min=1e-9)
    var_b = (sq_b - sum_b**2 / count).clamp(min=1e-9)
    best = np.full((n, n), -1.0)
    shift = np.zeros((n, n, 2), dtype=np.int64)
    for i in range(n - 1):
        cross = corr(fx[i : i + 1], fx[i + 1 :])
        ncc = (cross - sum_a[i] * sum_b[i + 1 :] / count) / torch.sqrt(var_a[i] * var_b[i + 1 :])
        ncc = torch.where(valid, ncc, torch.tensor(-1.0, dtype=torch.float64))
        value, index = ncc.flatten(1).max(1)
        dy, dx = np.divmod(index.numpy(), size[1])
        best[i, i + 1 :] = value.numpy()
        shift[i, i + 1 :, 0] = np.where(dy < h, dy, dy - size[0])
        shift[i, i + 1 :, 1] = np.where(dx < w, dx, dx - size[1])
    return best, shift[..., 0], shift[..., 1]


def _shared(a: np.ndarray, b: np.ndarray, dy: int, dx: int, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``a`` and ``b`` that coincide when ``b`` is shifted by (dy, dx); ``a``'s part
    shrunk by ``margin`` on every side."""
    h, w = a.shape
    ya, yb, xa, xb = max(0, dy), max(0, -dy), max(0, dx), max(0, -dx)
    hh, ww = h - abs(dy), w - abs(dx)
    return a[ya + margin : ya + hh - margin, xa + margin : xa + ww - margin], b[yb : yb + hh, xb : xb + ww]


def _agree(a: np.ndarray, b: np.ndarray, max_mad: float = 20.0, min_ncc: float = 0.8) -> bool:
    """Whether two views of one place agree pixel for pixel, brightness included: crops of one
    photograph do (on VCIP: mean difference at most 16 grey levels, correlation at least 0.87),
    different places whose fine detail happens to line up at one shift do not."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    x, y = a - a.mean(), b - b.mean()
    ncc = float((x * y).sum() / (np.sqrt(float((x * x).sum()) * float((y * y).sum())) + 1e-6))
    return float(np.abs(a - b).mean()) <= max_mad and ncc >= min_ncc


def find_overlaps(images: dict[str, np.ndarray], min_shared: float = 0.15, threshold: float = 0.5,
                  scale: int = 4) -> list[Overlap]:
    """Pairs of images (gray, one category, one size) that are crops of one photograph.

    VCIP 2020's training images are 256x256 crops cut from larger photographs, most of them two
    per photograph overlapping by about half, and overlapping crops are not numbered next to
    each other, so a split by name leaks. Here every pair is compared at all shifts that share
    at least ``min_shared`` of the image, on fine detail (a high-pass filter, so that smooth
    skies and horizons match nothing): at 1/``scale`` size with FFTs, and the best shift of each
    promising pair again at full size (within ``scale`` pixels). A pair whose shared part
    correlates at ``threshold`` or more, and whose shared part agrees in plain brightness too
    (``_agree``), is an overlap. On VCIP's 364 images: 185 overlapping pairs, detail scores
    0.53-1.0; the best of all other pairs 0.49. Not found: crops taken at different
    scales, rotated, or of different sizes.
    """
    names = list(images)
    out: list[Overlap] = []
    buckets: dict[tuple, list[str]] = defaultdict(list)
    for n in names:
        buckets[(category(n), images[n].shape)].append(n)
    for (_, shape), bucket in sorted(buckets.items(), key=lambda kv: kv[0][0]):
        if len(bucket) < 2:
            continue
        h, w = shape
        s = max(1, min(scale, min(h, w) // 32))
        coarse = [_high_pass(cv2.resize(images[n], (w // s, h // s), interpolation=cv2.INTER_AREA), 2.0) for n in bucket]
        best, dys, dxs = _coarse_matches(coarse, min_shared)
        fine = {n: _high_pass(images[n], 2.0) for n in bucket}
        for i, j in zip(*np.nonzero(best >= 0.8 * threshold)):
            a, b = bucket[i], bucket[j]
            dy, dx = int(dys[i, j]) * s, int(dxs[i, j]) * s
            tmpl, region = _shared(fine[a], fine[b], dy, dx, margin=s)
            if tmpl.size == 0 or tmpl.shape[0] > region.shape[0] or tmpl.shape[1] > region.shape[1] or tmpl.std() < 1e-3:
                continue
            res = cv2.matchTemplate(region, tmpl, cv2.TM_CCOEFF_NORMED)
            _, score, _, (x, y) = cv2.minMaxLoc(res)
            ddy, ddx = dy + s - y, dx + s - x  # the template sat at offset (s, s) of the shifted region
            shared = (h - abs(ddy)) * (w - abs(ddx)) / (h * w)
            if score >= threshold and shared >= min_shared and _agree(*_shared(images[a], images[b], ddy, ddx)):
                out.append(Overlap(a, b, ddy, ddx, float(score), float(shared)))
    return out


def split_names(names: list[str], val_fraction: float = 0.08, seed: int = 0, group: int = 1,
                together: list[tuple[str, str]] | None = None) -> tuple[list[str], list[str]]:
    """A seeded per-category split: about ``val_fraction`` of each category for validation.

    Names in one group of ``group`` consecutive numbers, or linked through ``together`` (pairs
    that must stay on one side, such as ``find_overlaps``' crops of one photograph), are kept
    on the same side."""
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for cat_groups in photo_groups(names, group).values():
        for g in cat_groups:
            for n in g[1:]:
                parent[root(n)] = root(g[0])
    for a, b in together or ():
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    members: dict[str, list[str]] = defaultdict(list)
    for n in names:
        members[root(n)].append(n)
    by_cat: dict[str, list[list[str]]] = defaultdict(list)
    for g in members.values():
        g.sort()
        by_cat[category(g[0])].append(g)
    rng = random.Random(seed)
    train, val = [], []
    for cat, groups in sorted(by_cat.items()):
        groups.sort()
        total = sum(len(g) for g in groups)
        order = list(range(len(groups)))
        rng.shuffle(order)
        taken = 0
        chosen = set()
        for i in order:
            if taken >= val_fraction * total - 1e-9 or len(chosen) == len(groups) - 1:
                break
            chosen.add(i)
            taken += len(groups[i])
        for i, g in enumerate(groups):
            (val if i in chosen else train).extend(g)
    return sorted(train), sorted(val)


OVERLAPS_VERSION = "1"  # bumped when find_overlaps' answer changes for the same images


def overlapping_pairs(gray: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """``find_overlaps``' pairs (names), kept in the artefact cache under a hash of the names and
    pictures: the search takes half a minute of CPU for the 364 VCIP images, and every training
    run and ``evaluate --split val`` asks it again of the same images."""
    import hashlib
    import json

    from .runtime.cache import ArtefactCache, ArtefactKey

    h = hashlib.sha256(OVERLAPS_VERSION.encode())
    for name in sorted(gray):
        img = np.ascontiguousarray(gray[name])
        h.update(f"{name}:{img.shape};".encode())
        h.update(img.tobytes())
    key = ArtefactKey(kind="overlaps", weights=h.hexdigest(), shape=(len(gray),), precision="-", torch="-", tensorrt="-",
                      torch_tensorrt="-", onnxruntime="-")

    def search(path: Path) -> None:
        path.write_text(json.dumps([[o.a, o.b] for o in find_overlaps(gray)]))

    def check(path: Path) -> None:
        pairs = json.loads(path.read_text())
        if not all(isinstance(p, list) and len(p) == 2 and all(n in gray for n in p) for p in pairs):
            raise ValueError("not pairs of these images' names")

    try:
        path = ArtefactCache().get_or_build(key, ".json", search, check)
    except (InputError, OSError) as exc:  # no cache to be had: searched each time
        log.debug("split: overlaps not cached (%s)", exc)
        return [(o.a, o.b) for o in find_overlaps(gray)]
    return [tuple(p) for p in json.loads(path.read_text())]


def validation_split(data: PairedSet, val_fraction: float = 0.08, seed: int = 0, group: int = 1,
                     by_content: bool = True) -> tuple[list[str], list[str]]:
    """``split_names`` for a loaded paired set, keeping crops of one photograph (``find_overlaps``
    on the RGB images' luma) on one side. Training and ``nirvision evaluate --split val`` both
    call this, so they agree on the validation images."""
    together: list[tuple[str, str]] = []
    if by_content:
        gray = {n: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for n, rgb in zip(data.names, data.rgb)}
        together = overlapping_pairs(gray)
        log.info("split: %d pairs of images overlap (crops of one photograph); each pair stays on one side", len(together))
    train, val = split_names(data.names, val_fraction, seed, group, together)
    if not val or not train:
        raise InputError(f"{data.root or 'data'}: {len(data)} image pairs cannot be split {1 - val_fraction:.0%} / {val_fraction:.0%} into training and "
                         f"validation: every category is one group of overlapping images or too small (give more images)")
    return train, val
