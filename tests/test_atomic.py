"""Atomic writes: an output is complete or absent; a failed write leaves the old one intact."""

from __future__ import annotations

import pytest

from audioscope_kedro.atomic import atomic_path, is_temporary, write_json, write_text


def test_file_replaced_only_on_success(tmp_path):
    target = tmp_path / "a" / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text().strip() == '{\n  "v": 1\n}'
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]  # no leftover


def test_folder_replaces_a_folder(tmp_path):
    target = tmp_path / "shard-00000"
    for version in ("old", "new"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "data.txt").write_text(version)
    assert (target / "data.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["shard-00000"]


def test_temporary_name_keeps_the_suffix_and_is_hidden(tmp_path):
    with atomic_path(tmp_path / "x.wav") as tmp:
        assert tmp.suffix == ".wav" and is_temporary(tmp) and tmp.parent == tmp_path
        write_text(tmp_path / "other.txt", "y")
        tmp.write_bytes(b"")
    assert not is_temporary(tmp_path / "x.wav")
