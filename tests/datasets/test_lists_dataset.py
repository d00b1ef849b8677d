"""The AudioScope lists dataset: a folder of release-named CSV lists as ``dict[ListKey, DataFrame]``."""

import pandas as pd

from audioscope_kedro.data.lists import MOM_COLUMNS, ListKey
from audioscope_kedro.datasets.lists_dataset import AudioScopeListsDataset


def test_lists_dataset_round_trip(tmp_path):
    lists = {
        ListKey.parse("train"): pd.DataFrame(
            {"video_path": ["a.mp4"], "start_time": [0.0], "end_time": [5.0]}
        ),
        ListKey.parse("test_on_off_mom"): pd.DataFrame(
            [("a.mp4", 0.0, 5.0, "b.mp4", 0.0, 5.0)],
            columns=MOM_COLUMNS,
        ),
    }
    ds = AudioScopeListsDataset(str(tmp_path), prefix="unfiltered")
    ds.save(lists)
    assert (
        (tmp_path / "unfiltered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv")
        .read_text()
        .startswith("a.mp4,")
    )
    loaded = ds.load()
    assert set(loaded) == set(lists)
    assert loaded[ListKey.parse("train")]["end_time"].tolist() == [5.0]


def test_unrecognised_list_name_is_warned_not_skipped_silently(tmp_path, caplog):
    (tmp_path / "filtered_train_clips.csv").write_text("a.mp4,0,5\n")
    (tmp_path / "filtered_test_onscreen_mom_clips.csv").write_text("a.mp4,0,5,b.mp4,0,5\n")
    with caplog.at_level("WARNING"):
        loaded = AudioScopeListsDataset(str(tmp_path), prefix="filtered").load()
    assert set(loaded) == {ListKey.parse("train")}
    assert "filtered_test_onscreen_mom_clips.csv" in caplog.text
