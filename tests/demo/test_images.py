"""Pictures for the realistic demo: the Qt resource reader, sprites, the prepared folder and its
record, the messages when an input is missing, and (skipped where it cannot be fetched) the
real Debian package with the shipped class <-> picture lists."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from audioscope_kedro.demo import images as images_module
from audioscope_kedro.demo.dataset import demo_params, image_manifest
from audioscope_kedro.demo.images import (
    DemoInputMissing,
    ImageBank,
    ImageSetParams,
    decode_picture,
    encode_png,
    fetch_package,
    prepare_images,
    to_sprite,
)
from audioscope_kedro.demo.rcc import RccArchive
from audioscope_kedro.pipelines.demo_data.nodes import prepare_demo_images
from tests.demo.helpers import stand_in_picture
from tests.helpers import PROJECT_ROOT


def write_rcc(path: Path, files: dict[str, bytes], compress: set[str] = frozenset()) -> None:
    """A Qt resource bundle (format 2) holding ``files`` (``dir/name``: bytes), written the way
    Qt's rcc lays it out: header, names, tree (children of a folder in consecutive nodes), data;
    the names in ``compress`` zlib-compressed as qCompress does."""
    names, data, tree = bytearray(), bytearray(), []
    name_at: dict[str, int] = {}

    def name(text: str) -> int:
        if text not in name_at:
            name_at[text] = len(names)
            names.extend(struct.pack(">HI", len(text), 0) + text.encode("utf-16-be"))
        return name_at[text]

    folders: dict[str, dict] = {}
    for full in files:
        node = folders
        for part in full.split("/")[:-1]:
            node = node.setdefault(part, {})
        node[full.split("/")[-1]] = full

    def add(children: dict) -> tuple[int, int]:
        first = len(tree)
        tree.extend([None] * len(children))
        for i, (key, value) in enumerate(sorted(children.items())):
            if isinstance(value, dict):
                sub_first, count = add(value)
                tree[first + i] = struct.pack(">IHII", name(key), 2, count, sub_first)
            else:
                payload = files[value]
                flags = 0
                if value in compress:
                    payload, flags = struct.pack(">I", len(payload)) + zlib.compress(payload), 1
                offset = len(data)
                data.extend(struct.pack(">I", len(payload)) + payload)
                tree[first + i] = struct.pack(">IHHHI", name(key), flags, 0, 0, offset)
        return first, len(children)

    tree.append(None)  # the root
    first, count = add(folders)
    tree[0] = struct.pack(">IHII", 0, 2, count, first)
    tree_bytes = b"".join(node + b"\0" * 8 for node in tree)  # 14 bytes + modification time
    names_at = 20
    tree_at = names_at + len(names)
    data_at = tree_at + len(tree_bytes)
    header = b"qres" + struct.pack(">IIII", 2, tree_at, data_at, names_at)
    path.write_bytes(header + bytes(names) + tree_bytes + bytes(data))


def test_rcc_reads_plain_and_compressed_files(tmp_path):
    files = {"a/b/plain.txt": b"hello", "a/packed.bin": bytes(range(256)) * 8, "top.txt": b"x"}
    write_rcc(tmp_path / "t.rcc", files, compress={"a/packed.bin"})
    archive = RccArchive(tmp_path / "t.rcc")
    assert archive.names() == sorted(files)
    for name, content in files.items():
        assert archive.read(name) == content
    with pytest.raises(KeyError, match="no file"):
        archive.read("a/missing.txt")
    (tmp_path / "bad.rcc").write_bytes(b"not a bundle at all")
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        RccArchive(tmp_path / "bad.rcc")


def test_sprites_are_trimmed_and_photos_get_soft_edges():
    drawing = np.zeros((100, 60, 4), np.uint8)
    drawing[30:70, 10:30] = (200, 10, 10, 255)  # a 40x20 red bar in a transparent surround
    sprite = to_sprite(drawing, 48)
    assert sprite.shape == (48, 24, 4) and sprite[24, 12, 0] > 190
    photo = to_sprite(np.full((30, 60, 4), 255, np.uint8), 48)
    assert photo.shape == (24, 48, 4)
    assert photo[0, 0, 3] < 128 and photo[12, 24, 3] == 255
    with pytest.raises(ValueError, match="transparent"):
        to_sprite(np.zeros((10, 10, 4), np.uint8), 8)


def test_svg_pictures_are_rasterised():
    pytest.importorskip("cairosvg", reason="cairosvg is not installed")
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10">'
        b'<rect x="5" y="0" width="10" height="10" fill="#0000ff"/></svg>'
    )
    try:
        rgba = decode_picture(svg, "thing.svg", 40)
    except DemoInputMissing as err:  # no libcairo on this machine
        pytest.skip(str(err))
    assert rgba.shape == (20, 40, 4)
    assert tuple(rgba[10, 20]) == (0, 0, 255, 255) and rgba[10, 2, 3] == 0


def _fake_package(tmp_path: Path) -> tuple[Path, ImageSetParams]:
    """An unpacked 'package' with one activity bundle, and the lists that point into it."""
    tree = tmp_path / "tree"
    bundle = tree / "usr/share/app/rcc"
    bundle.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "src/acts/farm/res/dog.png": encode_png(stand_in_picture(rng, photo=True)),
        "src/acts/farm/res/cat.png": encode_png(stand_in_picture(rng, photo=False)),
        "src/acts/farm/res/field.png": encode_png(np.full((50, 80, 4), 90)),
    }
    write_rcc(bundle / "farm.rcc", files, compress={"src/acts/farm/res/cat.png"})
    spec = ImageSetParams(
        package="fake-data",
        version="1.0",
        rcc_root="usr/share/app/rcc",
        rcc_prefix="src/acts",
        classes={"dog": ("farm/res/dog.png",), "cat": ("farm/res/cat.png",)},
        backgrounds=("farm/res/field.png",),
        sprite_size=24,
        background_size=32,
    )
    return tree, spec


def test_prepared_folder_and_its_record(tmp_path, monkeypatch):
    tree, spec = _fake_package(tmp_path)
    calls = []
    monkeypatch.setattr(
        images_module, "fetch_package", lambda p, c: calls.append(p) or (tree, "1.0")
    )
    folder, manifest = prepare_images(spec, tmp_path / "cache")
    assert calls == ["fake-data"] and folder.name == f"sprites-{spec.fingerprint()}"
    assert list(manifest.kind) == ["objects", "objects", "backgrounds"]
    dog = manifest[manifest.class_name == "dog"].iloc[0]
    assert dog.source == "usr/share/app/rcc/farm.rcc!src/acts/farm/res/dog.png"
    assert dog.version == "1.0" and len(dog.source_sha256) == 64
    bank = ImageBank(folder)
    assert bank.classes == ["cat", "dog"] and len(bank.backgrounds) == 1
    assert max(bank.objects["dog"][0].rgba.shape[:2]) == 24
    assert min(bank.backgrounds[0].rgba.shape[:2]) == 32
    # Made once per setting: a second call reads the record and fetches nothing.
    again, manifest2 = prepare_images(spec, tmp_path / "cache")
    assert again == folder and calls == ["fake-data"]
    pd.testing.assert_frame_equal(manifest, manifest2)
    # A version other than the one the lists were chosen in is refused, with what to do.
    monkeypatch.setattr(images_module, "fetch_package", lambda p, c: (tree, "2.0"))
    with pytest.raises(DemoInputMissing, match=r"chosen in fake-data 1\.0, and apt gives 2\.0"):
        prepare_images(spec, tmp_path / "other_cache")


def test_a_picture_missing_from_the_package_is_named(tmp_path, monkeypatch):
    tree, spec = _fake_package(tmp_path)
    monkeypatch.setattr(images_module, "fetch_package", lambda p, c: (tree, "1.0"))
    bad = ImageSetParams(**{**spec.__dict__, "classes": {"dog": ("farm/res/wolf.png",)}})
    with pytest.raises(
        DemoInputMissing, match="farm.rcc of fake-data has no picture farm/res/wolf"
    ):
        prepare_images(bad, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("sprites-*")), "a half-made folder was left"


def _real_params(stand_in, **change) -> dict:
    params = {
        "style": "real",
        "sample_rate": 8000,
        "duration": 2.0,
        "sound_bank": str(stand_in.sounds),
        "images": {"folder": str(stand_in.textured)},
    }
    return {**params, **change}


def test_missing_inputs_stop_with_one_message(stand_in, tmp_path, monkeypatch):
    """No recordings, no apt-get: a message saying what is missing and what to do; through
    the node, a clean stop (SystemExit with that message: no traceback, exit status 1)."""
    no_sounds = _real_params(stand_in, sound_bank=str(tmp_path / "shared/data/sounds"))
    with pytest.raises(DemoInputMissing, match="needs the real recordings of demo_data.sound_bank"):
        image_manifest(no_sounds)
    with pytest.raises(SystemExit) as stop:
        prepare_demo_images(no_sounds, 2.0)
    assert str(stop.value.code).startswith("demo_data stopped: the realistic demo needs")
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(DemoInputMissing, match="no apt-get or dpkg-deb"):
        fetch_package("gcompris-qt-data", tmp_path / "cache")
    no_folder = _real_params(stand_in, images={"folder": str(tmp_path / "nowhere")})
    with pytest.raises(DemoInputMissing, match="images.folder .* does not exist"):
        image_manifest(no_folder)


def test_the_default_demo_needs_no_pictures():
    assert image_manifest({"sample_rate": 8000}).empty
    assert demo_params({}).style.value == "shapes"


# ---------------------------------------------------------------- the real package


@pytest.fixture(scope="module")
def debian_pictures(tmp_path_factory) -> tuple[Path, pd.DataFrame, ImageSetParams]:
    """The shipped lists (conf/demo_real) cut from the real gcompris-qt-data; skipped where
    the package cannot be fetched (no apt, no network, no package lists) or SVG cannot be
    rasterised."""
    block = yaml.safe_load((PROJECT_ROOT / "conf/demo_real/parameters_demo_data.yml").read_text())
    spec = demo_params({**block["demo_data"], "image_cache": "unused"}).images
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available: the Debian package cannot be fetched")
    try:
        folder, manifest = prepare_images(spec, tmp_path_factory.mktemp("debian_cache"))
    except DemoInputMissing as err:
        pytest.skip(f"the realistic demo's pictures cannot be had here: {err}")
    return folder, manifest, spec


@pytest.mark.slow
def test_real_package_gives_every_listed_picture(debian_pictures):
    folder, manifest, spec = debian_pictures
    objects = manifest[manifest.kind == "objects"]
    assert set(objects.class_name) == set(spec.classes)
    assert len(objects) == sum(len(v) for v in spec.classes.values())
    assert (manifest.version == spec.version).all() and manifest.source_sha256.str.len().eq(
        64
    ).all()
    bank = ImageBank(folder)
    for sprites in bank.objects.values():
        for sprite in sprites:
            assert max(sprite.rgba.shape[:2]) == spec.sprite_size
            assert sprite.rgba[..., 3].mean() > 0.05  # something visible (a triangle: 0.09)
    assert len(bank.backgrounds) == len(spec.backgrounds) and len(bank.clutter) == len(spec.clutter)
    # The picture lists name classes of the shared recordings (where they are here).
    sounds = PROJECT_ROOT.parent / "shared/data/sounds"
    if sounds.is_dir():
        assert set(spec.classes) <= {p.name for p in sounds.iterdir() if p.is_dir()}


def test_apt_download_is_what_fetches(tmp_path):
    """`apt-get download` of a package that does not exist fails with apt's reason in the
    message (and the hint about package lists), not a traceback from a missing file."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get / dpkg-deb are not available")
    probe = subprocess.run(["apt-cache", "policy", "dpkg"], capture_output=True, text=True)
    if "Candidate" not in probe.stdout:
        pytest.skip("no apt package lists on this machine")
    with pytest.raises(DemoInputMissing, match="could not download the Debian package"):
        fetch_package("no-such-package-audioscope-test", tmp_path)
