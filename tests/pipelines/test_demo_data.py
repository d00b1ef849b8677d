"""The `demo_data` pipeline on the `test` environment, through Kedro: the release layout of the
lists it writes, and the stems of every clip."""

import pandas as pd
import pytest

from audioscope_kedro.data.lists import find_lists, read_clip_list, read_mom_list
from tests.helpers import TEST_DATA

pytestmark = pytest.mark.slow


def test_demo_data_writes_release_layout(demo_project):
    root = demo_project / TEST_DATA / "01_raw/demo"
    lists = {str(k): v for k, v in find_lists(root, "filtered").items()}
    assert set(lists) == {
        "train",
        "train_onscreen",
        "train_offscreen",
        "validate",
        "validate_onscreen",
        "validate_offscreen",
        "validate_on_off_mom",
        "validate_off_off_mom",
        "test",
        "test_onscreen",
        "test_offscreen",
        "test_on_off_mom",
        "test_off_off_mom",
    }
    # No header, positional columns, as in the public release.
    first = lists["train"].read_text().splitlines()[0].split(",")
    assert first[0].startswith("videos/train/") and float(first[2]) == 1.0
    assert len(read_clip_list(lists["test_offscreen"])) == 3
    moms = read_mom_list(lists["test_off_off_mom"])
    assert len(moms) == 3 and (moms.video_path_1 != moms.video_path_2).all()
    assert all(p.startswith("videos/test/offscreen") for p in moms.video_path_1)
    manifest = pd.read_csv(root / "stems.csv")
    on_only = manifest[manifest.video_path.str.contains("onscreen")]
    assert not (on_only.role == "off_screen").any()
    off_only = manifest[manifest.video_path.str.contains("offscreen")]
    assert not (off_only.role == "on_screen").any()
