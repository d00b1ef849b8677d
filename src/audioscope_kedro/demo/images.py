"""Pictures of sounding things for the realistic demo (plain Python, no Kedro).

The pictures come from a Debian package (GCompris' ``gcompris-qt-data`` by default), fetched at
run time with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache folder outside
git; nothing of it is committed. The ``demo_data.images`` block lists, per sound class, the
pictures that show it (``conf/demo_real/parameters_demo_data.yml``), plus background photos and
clutter. :func:`prepare_images` cuts each listed picture into a sprite (RGBA PNG, transparent
border trimmed, longest side ``sprite_size``) and records every file it used, with the package
version and checksums, in ``images.csv``; :class:`ImageBank` reads such a folder. A folder laid
out the same way (``objects/<class>/*.png``, ``backgrounds/*.png``, ``clutter/*.png``) can be
given instead (``images.folder``): the tests use tiny pictures of their own that way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from audioscope_kedro.atomic import atomic_path
from audioscope_kedro.demo.rcc import RccArchive

IMAGE_KINDS = ("objects", "backgrounds", "clutter")
# Part of every sprite folder's fingerprint: bump it when the cutting code changes what it
# writes, so that a cache of the old sprites is not taken for the new ones.
SPRITE_FORMAT = 1
MANIFEST = "images.csv"
RASTER_SUFFIXES = (".webp", ".png", ".jpg", ".jpeg")
VECTOR_SUFFIXES = (".svg", ".svgz")


class DemoInputMissing(RuntimeError):
    """An input of the realistic demo is absent or cannot be fetched; the message says which
    and what to do about it."""


@dataclass(frozen=True)
class ImageSetParams:
    """The ``demo_data.images`` block: which pictures show which sound class.

    An entry ``<activity>/<path>.webp`` is the file ``<rcc_prefix>/<activity>/<path>.webp``
    inside the bundle ``<rcc_root>/<activity>.rcc`` of ``package`` (GCompris keeps each
    activity's resources in one Qt resource bundle); an entry starting with ``/`` is a plain
    file of the package. ``folder``, if set, is a prepared image folder used as it is, and
    nothing is fetched.
    """

    package: str = "gcompris-qt-data"
    version: str | None = None  # the version the lists were chosen from; another one is refused
    rcc_root: str = "usr/share/gcompris-qt/rcc"
    rcc_prefix: str = "gcompris/src/activities"
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    backgrounds: tuple[str, ...] = ()
    clutter: tuple[str, ...] = ()
    sprite_size: int = 96  # longest side of an object or clutter sprite, pixels
    background_size: int = 320  # shorter side of a background photo, pixels
    folder: str | None = None

    def __post_init__(self) -> None:
        if self.folder is None:
            empty = sorted(c for c, files in self.classes.items() if not files)
            if not self.classes or empty:
                raise ValueError(f"images.classes needs pictures for every class; none for {empty}")
            if not self.backgrounds:
                raise ValueError("images.backgrounds is empty: scenes need a background photo")
        if self.sprite_size < 8 or self.background_size < 8:
            raise ValueError("images.sprite_size and images.background_size must be >= 8")

    def fingerprint(self) -> str:
        """A short hash of the settings: the sprite folder of one setting is reused, never
        another setting's."""
        text = json.dumps([SPRITE_FORMAT, asdict(self)], sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- fetching


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


def fetch_package(package: str, cache: Path) -> tuple[Path, str]:
    """The unpacked tree of a Debian package and its version, fetched once into ``cache``.

    ``apt-get download`` takes the candidate version of the machine's package lists (root is
    not needed to download); ``dpkg-deb -x`` unpacks it without installing anything.
    """
    cache = Path(cache)
    tree = cache / "packages" / package
    version_file = tree / "DEBIAN_VERSION"
    if version_file.exists():
        return tree, version_file.read_text().strip()
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise DemoInputMissing(
            f"the realistic demo fetches its pictures from the Debian package {package}, and "
            f"this machine has no {' or '.join(missing)}: run it on Debian or Ubuntu, or give "
            "a prepared image folder as demo_data.images.folder"
        )
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        result = _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not found:
            reason = (result.stderr.strip().splitlines() or ["no .deb file written"])[-1]
            hint = (
                " (the machine's package lists may be missing or old: run `apt-get update`)"
                if "locate" in reason or "no installation candidate" in reason
                else ""
            )
            raise DemoInputMissing(
                f"could not download the Debian package {package} with `apt-get download "
                f"{package}`: {reason}{hint}"
            )
    deb = found[-1]
    version = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    with atomic_path(tree) as tmp:
        result = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if result.returncode != 0:
            raise DemoInputMissing(f"could not unpack {deb}: {result.stderr.strip()}")
        (tmp / "DEBIAN_VERSION").write_text(version + "\n")
    deb.unlink()  # the unpacked tree is all that is read: no second copy of 44 MB
    return tree, version


class _PackageFiles:
    """Reads the entries of :class:`ImageSetParams` from an unpacked package tree."""

    def __init__(self, tree: Path, spec: ImageSetParams):
        self.tree, self.spec = tree, spec
        self._bundles: dict[str, RccArchive] = {}

    def source(self, entry: str) -> str:
        if entry.startswith("/"):
            return entry.lstrip("/")
        activity = entry.split("/", 1)[0]
        return f"{self.spec.rcc_root}/{activity}.rcc!{self.spec.rcc_prefix}/{entry}"

    def read(self, entry: str) -> bytes:
        if entry.startswith("/"):
            path = self.tree / entry.lstrip("/")
            if not path.is_file():
                raise DemoInputMissing(f"{self.spec.package} has no file {entry}")
            return path.read_bytes()
        activity = entry.split("/", 1)[0]
        bundle_path = self.tree / self.spec.rcc_root / f"{activity}.rcc"
        if activity not in self._bundles:
            if not bundle_path.is_file():
                raise DemoInputMissing(
                    f"{self.spec.package} has no resource bundle {self.spec.rcc_root}/"
                    f"{activity}.rcc (picture {entry})"
                )
            self._bundles[activity] = RccArchive(bundle_path)
        try:
            return self._bundles[activity].read(f"{self.spec.rcc_prefix}/{entry}")
        except KeyError:
            raise DemoInputMissing(
                f"{bundle_path.name} of {self.spec.package} has no picture {entry}"
            ) from None


# ---------------------------------------------------------------- pictures to sprites


def decode_picture(data: bytes, name: str, width: int) -> np.ndarray:
    """uint8 RGBA [H, W, 4] of a raster picture, or of an SVG rasterised ``width`` wide."""
    suffix = Path(name).suffix.lower()
    if suffix in VECTOR_SUFFIXES:
        if suffix == ".svgz" or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            import cairosvg
        except ImportError as err:
            raise DemoInputMissing(
                "rasterising the SVG pictures needs cairosvg (`pip install cairosvg`) and the "
                f"cairo library (`apt-get install libcairo2`): {err}"
            ) from None
        except OSError as err:  # cairocffi found no libcairo
            raise DemoInputMissing(
                f"rasterising the SVG pictures needs the cairo library (`apt-get install "
                f"libcairo2`): {err}"
            ) from None
        data = cairosvg.svg2png(bytestring=data, output_width=width)
    elif suffix not in RASTER_SUFFIXES:
        raise ValueError(f"{name}: not a picture format this demo reads")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{name}: unreadable picture")
    return _to_rgba(image)


def _to_rgba(image: np.ndarray) -> np.ndarray:
    """uint8 RGBA of what OpenCV decodes (grey, BGR or BGRA, 8 or 16 bits)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGBA)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


def read_png(path: Path) -> np.ndarray:
    """uint8 RGBA of a picture file."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: unreadable picture")
    return _to_rgba(image)


def encode_png(rgba: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgba.astype(np.uint8), cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise ValueError("could not encode a PNG")
    return data.tobytes()


def to_sprite(rgba: np.ndarray, size: int) -> np.ndarray:
    """The picture cut to its visible part, longest side ``size``.

    Drawings come with a transparent surround, trimmed here; a photo has none, so it is kept
    whole, as a picture card with a 2-pixel soft edge (a hard edge flickers when it moves).
    """
    alpha = rgba[..., 3]
    ys, xs = np.nonzero(alpha > 8)
    if ys.size == 0:
        raise ValueError("picture is fully transparent")
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = rgba.shape[:2]
    scale = size / max(h, w)
    out = cv2.resize(
        rgba,
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
    )
    if (alpha > 250).mean() > 0.98:  # opaque: a photo
        h, w = out.shape[:2]
        x, y = np.arange(w), np.arange(h)
        edge = np.minimum(np.minimum(x, w - 1 - x)[None, :], np.minimum(y, h - 1 - y)[:, None])
        out = out.copy()
        out[..., 3] = (np.clip((edge + 0.5) / 2, 0, 1) * 255).astype(np.uint8)
    return out


def to_background(rgba: np.ndarray, size: int) -> np.ndarray:
    """An opaque background photo, shorter side ``size``."""
    h, w = rgba.shape[:2]
    scale = size / min(h, w)
    out = cv2.resize(rgba, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out[..., 3] = 255
    return out


def _sprite_name(entry: str) -> str:
    """``explore_farm_animals/resource/animals/dog.webp`` -> ``explore_farm_animals_dog``."""
    parts = entry.strip("/").split("/")
    return f"{parts[0]}_{Path(parts[-1]).stem}" if len(parts) > 1 else Path(parts[-1]).stem


def _save_png(path: Path, rgba: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_png(rgba)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def prepare_images(spec: ImageSetParams, cache: str | Path) -> tuple[Path, pd.DataFrame]:
    """The sprite folder of ``spec`` and its manifest (one row per picture: kind, class,
    sprite file, package, version, source inside the package, checksums), made once per
    setting under ``cache/sprites-<fingerprint>``; or ``spec.folder`` as it is."""
    if spec.folder is not None:
        folder = Path(spec.folder)
        if not folder.is_dir():
            raise DemoInputMissing(f"demo_data.images.folder {folder} does not exist")
        return folder, manifest_of_folder(folder)
    cache = Path(cache)
    folder = cache / f"sprites-{spec.fingerprint()}"
    if (folder / MANIFEST).exists():
        return folder, read_manifest(folder / MANIFEST)
    tree, version = fetch_package(spec.package, cache)
    if spec.version is not None and version != spec.version:
        raise DemoInputMissing(
            f"the demo's picture lists were chosen in {spec.package} {spec.version}, and apt "
            f"gives {version}: check that every listed picture is still there and shows its "
            "class, then set demo_data.images.version to the new version"
        )
    files = _PackageFiles(tree, spec)
    jobs = [("objects", c, e) for c, entries in spec.classes.items() for e in entries]
    jobs += [("backgrounds", "", e) for e in spec.backgrounds]
    jobs += [("clutter", "", e) for e in spec.clutter]
    rows = []
    with atomic_path(folder) as tmp:
        for kind, class_name, entry in jobs:
            data = files.read(entry)
            try:
                rgba = decode_picture(data, entry, 2 * spec.sprite_size)
                if kind == "backgrounds":
                    image = to_background(rgba, spec.background_size)
                else:
                    image = to_sprite(rgba, spec.sprite_size)
            except ValueError as err:
                raise DemoInputMissing(f"{spec.package} picture {entry}: {err}") from err
            rel = Path(kind, class_name, _sprite_name(entry) + ".png")
            rows.append(
                {
                    "kind": kind,
                    "class_name": class_name,
                    "sprite": rel.as_posix(),
                    "package": spec.package,
                    "version": version,
                    "source": files.source(entry),
                    "source_sha256": hashlib.sha256(data).hexdigest(),
                    "sprite_sha256": _save_png(tmp / rel, image),
                }
            )
        pd.DataFrame(rows).to_csv(tmp / MANIFEST, index=False)
    return folder, pd.DataFrame(rows)


def read_manifest(path: Path) -> pd.DataFrame:
    # every column is text: an empty class (backgrounds) stays "", a version "1.0" a string
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def manifest_of_folder(folder: Path) -> pd.DataFrame:
    """The manifest of a prepared folder: its own ``images.csv``, or one listing its files."""
    if (folder / MANIFEST).exists():
        return read_manifest(folder / MANIFEST)
    rows = []
    for kind in IMAGE_KINDS:
        for path in sorted((folder / kind).rglob("*.png")):
            rel = path.relative_to(folder)
            rows.append(
                {
                    "kind": kind,
                    "class_name": rel.parent.name if kind == "objects" else "",
                    "sprite": rel.as_posix(),
                    "package": "",
                    "version": "",
                    "source": str(path),
                    "source_sha256": "",
                    "sprite_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- reading sprites


@dataclass(frozen=True)
class Sprite:
    name: str  # path in the image folder, e.g. objects/dog/lang_dog.png
    rgba: np.ndarray  # float32 [H, W, 4]: RGB 0..255, alpha 0..1


class ImageBank:
    """The sprites of a prepared folder: ``objects/<class>/*.png`` (the pictures of each sound
    class), ``backgrounds/*.png`` and ``clutter/*.png``; files in sorted order, so that a
    scene's choice by index is the same on every machine."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / "objects").is_dir():
            raise DemoInputMissing(f"image folder {self.folder} has no objects/<class>/ pictures")
        self.objects: dict[str, list[Sprite]] = {}
        for d in sorted(p for p in (self.folder / "objects").iterdir() if p.is_dir()):
            sprites = [self._load(p) for p in sorted(d.glob("*.png"))]
            if sprites:
                self.objects[d.name] = sprites
        self.backgrounds = [self._load(p) for p in sorted(self.folder.glob("backgrounds/*.png"))]
        self.clutter = [self._load(p) for p in sorted(self.folder.glob("clutter/*.png"))]
        if not self.objects or not self.backgrounds:
            raise DemoInputMissing(
                f"image folder {self.folder} needs pictures in objects/<class>/ and backgrounds/"
            )
        self.classes = list(self.objects)

    def _load(self, path: Path) -> Sprite:
        rgba = read_png(path).astype(np.float32)
        rgba[..., 3] /= 255.0
        return Sprite(path.relative_to(self.folder).as_posix(), rgba)


__all__ = [
    "DemoInputMissing",
    "ImageBank",
    "ImageSetParams",
    "Sprite",
    "decode_picture",
    "encode_png",
    "fetch_package",
    "manifest_of_folder",
    "prepare_images",
    "read_png",
    "to_background",
    "to_sprite",
]
