"""Bad and odd list files, and paths that would leave ``video_root``, through every reader of
lists: the readers themselves, the Kedro lists dataset (``ingest``), the clip store (what opens
the files), a scan of a video folder, and ``audioscope evaluate``.

Expected behaviour (docs/reliability.md): a file that cannot be a list is an error naming the
file and the reason; a bad row is quarantined with its line number and reason and the rest goes
on; CRLF, a byte-order mark and a header row are read as meant; repeated clip rows are dropped
with a warning naming both lines. No case ends in a pandas traceback, and no file outside
``video_root`` is ever opened.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from audioscope_kedro import command
from audioscope_kedro.data import clip_table as clip_table_module
from audioscope_kedro.data.clip_table import scan_video_folder
from audioscope_kedro.data.lists import (
    ListFileError,
    ListValidationError,
    read_clip_list,
    read_clip_rows,
    read_mom_list,
    read_mom_rows,
)
from audioscope_kedro.data.paths import OutsideRootError, resolve_inside
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.data.video_io import write_mp4
from audioscope_kedro.datasets.clip_store_dataset import ClipStoreDataset
from audioscope_kedro.datasets.lists_dataset import AudioScopeListsDataset
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.pipelines.ingest import create_pipeline as ingest_pipeline
from tests.helpers import TINY_DECODE, conf_parameters, run_in_memory, tiny_config, tone_clip
from tests.reliability.csv_cases import CLIP_CASES, MOM_CASES, FileError, Rows

NON_ASCII = "\u00fc\u00f1\u00ef \u65e5"  # a folder name with non-ASCII letters and a space


def csv_bytes(*rows: str, bom: bool = False, crlf: bool = False) -> bytes:
    text = "".join(row + ("\r\n" if crlf else "\n") for row in rows)
    return ("\ufeff" if bom else "").encode() + text.encode()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def check_case(rows_reader, strict_reader, path: Path, expected: Rows | FileError, first: str):
    """Both readers on one file, against the expected outcome."""
    if isinstance(expected, FileError):
        for reader in (rows_reader, strict_reader):
            with pytest.raises(ListFileError) as info:
                reader(path)
            assert expected.phrase in str(info.value)
            assert str(info.value).startswith(f"{path.name}: ")  # names the file first
        return
    rows = rows_reader(path)
    assert rows.frame[first].tolist() == expected.paths
    assert {row: why for row, why in rows.quarantined}.keys() == expected.quarantined.keys()
    for row, why in rows.quarantined:
        assert expected.quarantined[row] in why, (row, why)
    assert rows.duplicates == expected.duplicates
    for column in expected.extra:
        assert column in rows.frame.columns
    # the line numbers of the rows read are their lines in the file
    assert set(rows.frame.index).isdisjoint(expected.quarantined)
    times = [c for c in rows.frame.columns if c.startswith(("start_time", "end_time"))]
    assert all(rows.frame[c].dtype == np.float64 for c in times)
    report = rows.report()
    assert list(report.columns) == ["file", "row", "reason"]
    assert report["row"].tolist() == sorted(expected.quarantined)
    if expected.quarantined:  # the strict form refuses the same rows, naming each
        with pytest.raises(ListValidationError) as info:
            strict_reader(path)
        assert [row for row, _ in info.value.problems] == sorted(expected.quarantined)
        for row in expected.quarantined:
            assert f"{path.name}: row {row}: " in str(info.value)
    else:
        pd.testing.assert_frame_equal(strict_reader(path), rows.frame)


@pytest.mark.parametrize("case", list(CLIP_CASES))
def test_clip_list_case(tmp_path, case):
    data, expected = CLIP_CASES[case]
    path = write(tmp_path / "filtered_train_clips.csv", data)
    check_case(read_clip_rows, read_clip_list, path, expected, "video_path")


@pytest.mark.parametrize("case", list(MOM_CASES))
def test_mom_list_case(tmp_path, case):
    data, expected = MOM_CASES[case]
    path = write(
        tmp_path / "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv", data
    )
    check_case(read_mom_rows, read_mom_list, path, expected, "video_path_1")


def test_duplicates_are_named_in_a_warning(tmp_path, caplog):
    path = write(tmp_path / "l.csv", b"a.mp4,0,5\nb.mp4,0,5\na.mp4,0,5\n")
    with caplog.at_level(logging.WARNING, logger="audioscope_kedro.data.lists"):
        read_clip_rows(path)
    assert "l.csv: 1 duplicate row(s) dropped: row 3 repeats row 1" in caplog.text


def test_missing_list_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_clip_rows(tmp_path / "nowhere.csv")


# ------------------------------------------------------------------- the containment check


@pytest.fixture
def rooted(tmp_path):
    """``root/`` with ``inside.mp4`` and ``sub/``, ``outside/secret.mp4`` beside it, and
    symlinks in the root: to a file outside, to a folder outside, and to a file inside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "inside.mp4").write_bytes(b"x")
    (outside / "secret.mp4").write_bytes(b"x")
    os.symlink(outside / "secret.mp4", root / "link_out.mp4")
    os.symlink(outside, root / "sub" / "dir_out")
    os.symlink(root / "inside.mp4", root / "sub" / "link_in.mp4")
    return root, outside


@pytest.mark.parametrize(
    "path, symlink, phrase",
    [
        ("../outside/secret.mp4", False, "'..' climbs out"),
        ("sub/../../outside/secret.mp4", False, "'..' climbs out"),
        ("link_out.mp4", True, "resolves through a symlink"),
        ("sub/dir_out/secret.mp4", True, "resolves through a symlink"),
        ("{outside}/secret.mp4", False, "absolute path outside video_root"),
        ("inside.mp4\x00.txt", False, "NUL"),
        ("{root}/inside.mp4\x00.txt", False, "NUL"),
    ],
    ids=[
        "dotdot",
        "dotdot after a folder",
        "symlinked file",
        "symlinked folder",
        "absolute outside",
        "NUL",
        "absolute with NUL",
    ],
)
def test_paths_that_leave_the_root_are_refused(rooted, path, symlink, phrase):
    root, outside = rooted
    path = path.format(outside=outside, root=root)
    with pytest.raises(OutsideRootError) as info:
        resolve_inside(root, path)
    assert phrase in info.value.reason and info.value.symlink is symlink


def test_paths_inside_the_root_resolve_to_the_real_file(rooted, tmp_path):
    root, _ = rooted
    real = (root / "inside.mp4").resolve()
    assert resolve_inside(root, "inside.mp4") == real
    assert resolve_inside(root, "sub/../inside.mp4") == real
    assert resolve_inside(root, "sub/link_in.mp4") == real  # a symlink that stays inside
    assert resolve_inside(root, str(root / "inside.mp4")) == real  # absolute, inside
    # a root that is itself a symlink (data/videos -> /mnt/big/videos) is judged by its target
    os.symlink(root, tmp_path / "root_link")
    assert resolve_inside(tmp_path / "root_link", "inside.mp4") == real
    with pytest.raises(OutsideRootError):
        resolve_inside(tmp_path / "root_link", "link_out.mp4")


def small_video(path: Path, seed: int = 0) -> Path:
    frames, audio = tone_clip(duration=1.5, sr=16000, fps=8.0, size=16, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, frames, 8.0, audio, 16000)
    return path


@pytest.fixture(scope="module")
def escape_root(tmp_path_factory):
    """A video root with two good videos and symlinks to a *valid* video outside it: were the
    outside file ever opened it would decode and be ingested, so its quarantine proves it was
    not."""
    base = tmp_path_factory.mktemp("escape")
    root = base / "videos"
    small_video(root / "good 1.mp4", 0)
    small_video(root / f"{NON_ASCII}/good_2.mp4", 1)
    small_video(base / "outside" / "private.mp4", 2)
    os.symlink(base / "outside" / "private.mp4", root / "link_out.mp4")
    os.symlink(base / "outside", root / "dir_out")
    return root


def test_scan_never_opens_a_symlink_out_of_the_root(escape_root, monkeypatch):
    probed = []
    real_probe = clip_table_module.probe_duration
    monkeypatch.setattr(
        clip_table_module, "probe_duration", lambda p: probed.append(Path(p)) or real_probe(p)
    )
    table = scan_video_folder(escape_root, 1.0, 1.0, [".mp4"])
    assert "link_out.mp4" in set(table["video_path"])  # listed, so that ingest quarantines it
    root = escape_root.resolve()
    assert probed and all(p.resolve().is_relative_to(root) for p in probed)
    batch = ShardBatch(plan_shards(table, str(escape_root), TINY_DECODE, 8), 1, TINY_DECODE)
    build_clip_store(batch, escape_root.parent / "scan_store")
    store = ClipStore(escape_root.parent / "scan_store")
    bad = dict(zip(store.quarantine["video_path"], store.quarantine["reason"], strict=True))
    assert bad == {"link_out.mp4": "path escapes video_root through a symlink"}
    assert set(store.index["video_path"]) == {"good 1.mp4", f"{NON_ASCII}/good_2.mp4"}


def lists_folder(folder: Path) -> Path:
    """Release-named lists with good rows, bad rows, a repeat, CRLF and a BOM, and rows that
    leave the root lexically (quarantined by the reader) or through symlinks (by the store)."""
    good_2 = f"{NON_ASCII}/good_2.mp4"
    write(
        folder / "filtered_train_clips.csv",
        csv_bytes(
            "good 1.mp4,0,1",  # 1
            f"{good_2},0,1",  # 2: non-ASCII path with a space
            "good 1.mp4,0,1",  # 3: repeats row 1
            "good 1.mp4,1,0.5",  # 4: end before start
            "../outside/private.mp4,0,1",  # 5: '..'
            "link_out.mp4,0,1",  # 6: symlink out of the root
            "dir_out/private.mp4,0,1",  # 7: through a symlinked folder
            "good 1.mp4,abc,1",  # 8: not a number
            bom=True,
            crlf=True,
        ),
    )
    write(
        folder / "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
        csv_bytes(
            f"good 1.mp4,0,1,{good_2},0,1",
            "good 1.mp4,0,1,/etc/passwd,0,1",  # 2: absolute
        ),
    )
    return folder


def test_ingest_quarantines_bad_rows_and_escapes_and_goes_on(escape_root, tmp_path, caplog):
    """The whole ``ingest`` pipeline (lists dataset, nodes, clip-store dataset): the good clips
    are ingested, every bad row is reported with its file, line and reason, and no file outside
    the root is opened."""
    lists_dir = lists_folder(tmp_path / "lists")
    report_path = tmp_path / "reports" / "list_quarantine.csv"
    params = conf_parameters("test")
    inputs = {
        "audioscope_lists": AudioScopeListsDataset(
            str(lists_dir), "filtered", quarantine_path=str(report_path)
        ),
        "params:ingest": {**params["ingest"], "video_root": str(escape_root)},
        "params:clip_seconds": params["clip_seconds"],
        "clip_store": ClipStoreDataset(str(tmp_path / "store")),
    }
    with caplog.at_level(logging.WARNING):
        out = run_in_memory(ingest_pipeline(), inputs)
    train = "filtered_train_clips.csv"
    report = pd.read_csv(report_path)
    assert sorted((Path(f).name, r) for f, r in zip(report.file, report.row, strict=True)) == [
        ("filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv", 2),
        (train, 4),
        (train, 5),
        (train, 8),
    ]
    assert f"{train}: row 5 quarantined: video_path: '../outside/private.mp4'" in caplog.text
    assert f"{train}: 1 duplicate row(s) dropped: row 3 repeats row 1" in caplog.text
    store = ClipStore(tmp_path / "store")
    bad = dict(zip(store.quarantine["video_path"], store.quarantine["reason"], strict=True))
    assert bad == {
        "link_out.mp4": "path escapes video_root through a symlink",
        "dir_out/private.mp4": "path escapes video_root through a symlink",
    }
    assert set(store.index["video_path"]) == {"good 1.mp4", f"{NON_ASCII}/good_2.mp4"}
    assert len(out["mom_table"]) == 1 and out["ingest_summary"]["clips_quarantined"] == 2

    # fixed lists: the report is rewritten, with no row of the previous run
    write(lists_dir / train, b"good 1.mp4,0,1\n")
    mom = "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv"
    write(lists_dir / mom, csv_bytes(f"good 1.mp4,0,1,{NON_ASCII}/good_2.mp4,0,1"))
    AudioScopeListsDataset(str(lists_dir), "filtered", quarantine_path=str(report_path)).load()
    assert pd.read_csv(report_path).empty


def test_a_list_that_is_no_list_stops_the_load_naming_every_such_file(tmp_path):
    folder = tmp_path / "lists"
    write(folder / "filtered_train_clips.csv", b"")
    write(folder / "filtered_test_clips.csv", b"a.mp4,0,5,b.mp4,0,5\n")
    write(folder / "filtered_validate_clips.csv", b"a.mp4,0,5\n")
    with pytest.raises(DatasetError) as info:  # Kedro's wrapping of the dataset's ValueError
        AudioScopeListsDataset(str(folder), "filtered").load()
    message = str(info.value)
    assert f"{folder / 'filtered_train_clips.csv'}: empty: no rows" in message
    assert f"{folder / 'filtered_test_clips.csv'}: no row has the 3 fields" in message
    assert "filtered_validate_clips.csv" not in message
    assert "Traceback" not in message


# ------------------------------------------------------------------------ audioscope evaluate


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained tiny model folder at 8 kHz (its numbers do not matter here)."""
    from tests.helpers import TINY_MEDIA

    folder = tmp_path_factory.mktemp("model") / "model"
    AudioScope(tiny_config(clip_seconds=1.0, media=TINY_MEDIA)).save(folder)
    return folder


def evaluate_args(root: Path, on: Path, off: Path, model: Path, out: Path) -> list[str]:
    return [
        "evaluate",
        "--video-root",
        str(root),
        "--on-mom",
        str(on),
        "--off-mom",
        str(off),
        "--model",
        str(model),
        "--out",
        str(out),
        "--workers",
        "1",
        "--examples",
        "1",
    ]


def test_audioscope_evaluate_quarantines_bad_rows(escape_root, tiny_model, tmp_path, capsys):
    lists = tmp_path / "lists"
    good_2 = f"{NON_ASCII}/good_2.mp4"
    on = write(
        lists / "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
        csv_bytes(
            "good 1.mp4,0,1,dir_out/private.mp4,0,1",  # 1: clip 2 through a symlinked folder
            f"good 1.mp4,0,1,{good_2},0,1",  # 2: good
            f"good 1.mp4,0,1,{good_2},-1,1",  # 3: negative
            bom=True,
            crlf=True,
        ),
    )
    off = write(
        lists / "filtered_test_offscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
        csv_bytes(f"{good_2},0,1,good 1.mp4,0,1", f"{good_2},0,1,../../x.mp4,0,1"),  # 2: '..'
    )
    out = tmp_path / "out"
    assert command.main(evaluate_args(escape_root, on, off, tiny_model, out)) == 0
    err = capsys.readouterr().err
    assert f"quarantined {on}: row 3: start_time_2: -1 is negative" in err
    assert f"quarantined {off}: row 2: video_path_2: '../../x.mp4'" in err
    assert "quarantined dir_out/private.mp4 [0.0-1.0]: path escapes video_root" in err
    report = pd.read_csv(out / "list_quarantine.csv")
    assert report["row"].tolist() == [3, 2]
    per_mom = pd.read_parquet(out / "per_mom.parquet")
    assert len(per_mom) == 2  # on row 2 and off row 1: the rest was left out, not fatal
    assert (out / "metrics.json").exists()


def test_audioscope_evaluate_refuses_a_file_that_is_no_list(
    escape_root, tiny_model, tmp_path, capsys
):
    on = write(tmp_path / "on.csv", b"")
    off = write(tmp_path / "off.csv", b"good 1.mp4,0,1,good 1.mp4,0,1\n")
    out = tmp_path / "out"
    assert command.main(evaluate_args(escape_root, on, off, tiny_model, out)) == 2
    err = capsys.readouterr().err
    assert f"{on}: empty: no rows" in err and "Traceback" not in err
    assert not (out / "metrics.json").exists()
