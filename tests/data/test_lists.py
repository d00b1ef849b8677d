from pathlib import Path

import pytest

from audioscope_kedro.data.lists import (
    ClipLabel,
    ListKey,
    ListName,
    ListValidationError,
    MomKind,
    Partner,
    Split,
    find_lists,
    is_safe_relative_path,
    parse_list_name,
    read_clip_list,
    read_mom_list,
    release_list_names,
    scan_lists,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("header", [False, True])
def test_clip_list_with_or_without_header(tmp_path, header):
    text = "data/videos/mp4/827/a.mp4,10.0,15.0\nb.mp4,0,5\n"
    if header:
        text = "video_path,start_time,end_time\n" + text
    frame = read_clip_list(write(tmp_path / "l.csv", text))
    assert list(frame.columns[:3]) == ["video_path", "start_time", "end_time"]
    assert frame["start_time"].tolist() == [10.0, 0.0]
    assert frame["end_time"].dtype == float
    # Index is the line number in the file, so errors can name rows.
    assert frame.index.tolist() == ([2, 3] if header else [1, 2])


def test_header_keeps_extra_named_columns(tmp_path):
    frame = read_clip_list(
        write(tmp_path / "l.csv", "video_path,start_time,end_time,label\na.mp4,0,5,on\n")
    )
    assert frame["label"].tolist() == ["on"]


def test_bad_clip_list_names_every_bad_row(tmp_path):
    text = "\n".join(
        [
            "ok.mp4,0,5",
            "a.mp4,abc,5",  # 2: not a number
            "b.mp4,5,4",  # 3: end before start
            "../../etc/passwd,0,5",  # 4: escapes video_root
            "c.mp4,0",  # 5: missing field
            "/abs/d.mp4,0,5",  # 6: absolute path
            "e.mp4,-1,5",  # 7: negative start
            "f.mp4,0,inf",  # 8: not finite
        ]
    )
    with pytest.raises(ListValidationError) as info:
        read_clip_list(write(tmp_path / "filtered_train_clips.csv", text))
    rows = {row for row, _ in info.value.problems}
    assert rows == {2, 3, 4, 5, 6, 7, 8}
    message = str(info.value)
    assert "filtered_train_clips.csv: row 2" in message
    assert "row 5: expected 3 fields" in message
    assert "video_root" in message and "end_time > start_time" in message


def test_mom_list(tmp_path):
    good = "a.mp4,0,5,b.mp4,1,6\n"
    frame = read_mom_list(write(tmp_path / "m.csv", good))
    assert frame.iloc[0]["video_path_2"] == "b.mp4" and frame.iloc[0]["end_time_2"] == 6.0
    with pytest.raises(ListValidationError) as info:
        read_mom_list(write(tmp_path / "m2.csv", good + "a.mp4,0,5,b.mp4,7,6\n"))
    assert [row for row, _ in info.value.problems] == [2]


def test_mom_list_is_not_a_clip_list(tmp_path):
    with pytest.raises(ListValidationError, match="expected 3 fields"):
        read_clip_list(write(tmp_path / "m.csv", "a.mp4,0,5,b.mp4,1,6\n"))


@pytest.mark.parametrize(
    "name, key",
    [
        ("filtered_train_clips.csv", "train"),
        ("unfiltered_validate_clips.csv", "validate"),
        ("filtered_test_onscreen_unanimous_clips.csv", "test_onscreen"),
        ("filtered_validate_offscreen_unanimous_clips.csv", "validate_offscreen"),
        (
            "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
            "test_on_off_mom",
        ),
        (
            "unfiltered_test_offscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
            "test_off_off_mom",
        ),
    ],
)
def test_release_names_round_trip(name, key):
    parsed = parse_list_name(name)
    assert parsed is not None and str(parsed.key) == key
    assert ListKey.parse(key) == parsed.key
    assert ListName(parsed.prefix, ListKey.parse(key)).file_name() == name


def test_list_key_kinds():
    key = ListKey.parse("test_on_off_mom")
    assert key.is_mom and key.mom_kind is MomKind.ON_OFF and key.mom_kind.has_on_screen_reference
    assert ListKey.parse("validate_off_off_mom").mom_kind is MomKind.OFF_OFF
    assert not ListKey.parse("train").is_mom and ListKey.parse("train").label.code == -1
    with pytest.raises(ValueError, match="not a list key"):
        ListKey.parse("test_sideways")


def test_find_lists_filters_by_prefix(tmp_path):
    for name in ["filtered_train_clips.csv", "unfiltered_train_clips.csv", "notes.csv"]:
        write(tmp_path / name, "a.mp4,0,5\n")
    assert set(find_lists(tmp_path, "filtered")) == {ListKey.parse("train")}
    assert set(find_lists(tmp_path, "unfiltered")) == {ListKey.parse("train")}


@pytest.mark.parametrize(
    "path, ok",
    [
        ("a.mp4", True),
        ("x/../a.mp4", True),
        ("../a.mp4", False),
        ("a/../../b", False),
        ("/a", False),
        ("C:/a", False),
        ("", False),
    ],
)
def test_safe_relative_path(path, ok):
    assert is_safe_relative_path(path) is ok


# Every CSV name of the two releases, as their READMEs (google-research/sound-separation,
# datasets/audioscope/README.md and datasets/audioscope-v2/README.md) spell them.
AUDIOSCOPE_V1_NAMES = [
    "filtered_train_clips.csv",
    "filtered_train_onscreen_unanimous_clips.csv",
    "filtered_train_offscreen_unanimous_clips.csv",
    "filtered_validate_clips.csv",
    "filtered_validate_onscreen_unanimous_clips.csv",
    "filtered_validate_offscreen_unanimous_clips.csv",
    "filtered_test_clips.csv",
    "filtered_test_onscreen_unanimous_clips.csv",
    "filtered_test_offscreen_unanimous_clips.csv",
    "filtered_validate_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
    "filtered_validate_offscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
    "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
    "filtered_test_offscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv",
]
AUDIOSCOPE_V2_NAMES = [
    "unfiltered_train_clips.csv",
    "unfiltered_train_onscreen_unanimous_clips.csv",
    "unfiltered_train_offscreen_unanimous_clips.csv",
    "unfiltered_validate_clips.csv",
    "unfiltered_validate_onscreen_unanimous_clips.csv",
    "unfiltered_validate_offscreen_unanimous_clips.csv",
    "unfiltered_test_clips.csv",
    "unfiltered_test_onscreen_unanimous_clips.csv",
    "unfiltered_test_offscreen_unanimous_clips.csv",
    "unfiltered_validate_onscreen_unanimous_plus_random_unfiltered_mom_clips.csv",
    "unfiltered_validate_offscreen_unanimous_plus_random_unfiltered_mom_clips.csv",
    "unfiltered_test_onscreen_unanimous_plus_random_unfiltered_mom_clips.csv",
    "unfiltered_test_offscreen_unanimous_plus_random_unfiltered_mom_clips.csv",
]


@pytest.mark.parametrize("name", AUDIOSCOPE_V1_NAMES + AUDIOSCOPE_V2_NAMES)
def test_every_release_name_is_recognised_and_written_back(name):
    parsed = parse_list_name(name)
    assert parsed is not None, name
    assert parsed.file_name() == name
    assert ListKey.parse(str(parsed.key)) == parsed.key


@pytest.mark.parametrize(
    "prefix, names", [("filtered", AUDIOSCOPE_V1_NAMES), ("unfiltered", AUDIOSCOPE_V2_NAMES)]
)
def test_release_list_names_are_the_readmes(prefix, names):
    assert sorted(release_list_names(prefix)) == sorted(names)


def test_v2_mom_kinds():
    on = parse_list_name(AUDIOSCOPE_V2_NAMES[-2]).key
    off = parse_list_name(AUDIOSCOPE_V2_NAMES[-1]).key
    assert on.mom_kind is MomKind.ON_RANDOM and on.mom_kind.has_on_screen_reference
    assert off.mom_kind is MomKind.OFF_RANDOM and not off.mom_kind.has_on_screen_reference
    assert on.partner.label is ClipLabel.UNLABELLED  # the random partner has no human label
    assert str(on) == "test_on_random_mom"


def test_a_file_that_looks_like_a_list_is_reported(tmp_path):
    for name in AUDIOSCOPE_V2_NAMES[:2] + ["unfiltered_test_onscreen_clips.csv", "notes.csv"]:
        write(tmp_path / name, "a.mp4,0,5\n")
    found = scan_lists(tmp_path, "unfiltered")
    assert len(found.lists) == 2
    assert [p.name for p in found.unrecognised] == ["unfiltered_test_onscreen_clips.csv"]


def test_a_v1_partner_may_be_given_by_its_label():
    key = ListKey(Split.TEST, ClipLabel.ONSCREEN, ClipLabel.OFFSCREEN)
    assert key.partner is Partner.OFFSCREEN
    assert key.file_name("filtered") == AUDIOSCOPE_V1_NAMES[-2]
    with pytest.raises(TypeError):
        ListKey(Split.TEST, ClipLabel.ONSCREEN, "offscreen")
