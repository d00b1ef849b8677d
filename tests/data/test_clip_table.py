"""From AudioScope lists (or a folder of videos) to the clip table and the MoM table."""

import pandas as pd

from audioscope_kedro.data.clip_table import (
    assemble_clip_table,
    assemble_mom_table,
    scan_video_folder,
)
from audioscope_kedro.data.lists import MOM_COLUMNS, ClipLabel, ListKey, Partner, Split
from audioscope_kedro.data.store import clip_id


def test_clip_table_merges_lists_and_keeps_labels():
    clips = pd.DataFrame(
        {"video_path": ["a.mp4", "b.mp4"], "start_time": [0.0, 0.0], "end_time": [5.0, 5.0]}
    )
    on = clips.iloc[:1]
    moms = pd.DataFrame(
        [("a.mp4", 0.0, 5.0, "c.mp4", 0.0, 5.0)],
        columns=MOM_COLUMNS,
    )
    lists = {
        ListKey.parse("test"): clips,
        ListKey.parse("test_onscreen"): on,
        ListKey.parse("test_on_off_mom"): moms,
    }
    table = assemble_clip_table(lists)
    assert table.set_index("video_path")["label"].to_dict() == {
        "a.mp4": "onscreen",
        "b.mp4": "",
        "c.mp4": "offscreen",
    }
    assert table["clip_id"].is_unique
    mom = assemble_mom_table(lists)
    assert mom.iloc[0]["kind"] == "on_off"
    assert mom.iloc[0]["clip_id_1"] == clip_id("a.mp4", 0.0, 5.0)


def test_scan_cuts_videos_into_clips(video_root):
    table = scan_video_folder(video_root, clip_seconds=0.5, hop_seconds=0.5, extensions=[".mp4"])
    v0 = table[table.video_path == "v0.mp4"]
    assert v0["start_time"].tolist() == [0.0, 0.5, 1.0, 1.5]
    assert (v0["end_time"] - v0["start_time"]).eq(0.5).all()
    # the unreadable file is kept so that ingestion can quarantine it with a reason
    assert "empty.mp4" in set(table.video_path)


def test_random_partner_of_a_v2_mom_is_not_labelled_offscreen():
    moms = pd.DataFrame(
        [("on.mp4", 0.0, 5.0, "any.mp4", 10.0, 15.0)],
        columns=MOM_COLUMNS,
    )
    key = ListKey(Split.TEST, ClipLabel.ONSCREEN, Partner.RANDOM)
    table = assemble_clip_table({key: moms}).set_index("video_path")
    assert table.loc["on.mp4", "label"] == "onscreen" and table.loc["any.mp4", "label"] == ""
    mom = assemble_mom_table({key: moms})
    assert mom["kind"].tolist() == ["on_random"]
