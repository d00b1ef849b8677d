"""`calibrate` and `evaluate` on each release layout: the AudioScope (V1, ``filtered_``) lists
that the demo writes, and the same videos under every AudioScopeV2 (``unfiltered_``) list
name, whose MoMs pair a labelled clip with a random unfiltered one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from audioscope_kedro.data.lists import (
    MOM_COLUMNS,
    ClipLabel,
    ListKey,
    Partner,
    Split,
    find_lists,
    read_clip_list,
    release_list_names,
)
from audioscope_kedro.release import ReleasedModel
from tests.helpers import TEST_DATA, run

pytestmark = pytest.mark.slow


def _figures(metrics: dict) -> None:
    for key in (
        "calibrated_on_screen_si_snr",
        "calibrated_off_screen_suppression",
        "auc_roc",
        "mixture_si_snr",
        "oracle_si_snr",
    ):
        assert np.isfinite(metrics[key]), key


def test_v1_layout(chain):
    demo = chain / TEST_DATA / "01_raw/demo"
    assert {p.name for p in demo.glob("filtered_*.csv")} == set(release_list_names("filtered"))
    metrics = json.loads((chain / TEST_DATA / "08_reporting/metrics.json").read_text())
    _figures(metrics)
    assert (
        "mixture_si_snr_on_off" in metrics
        and "calibrated_off_screen_suppression_off_off" in metrics
    )
    per_mom = pd.read_parquet(chain / TEST_DATA / "08_reporting/per_mom.parquet")
    assert set(per_mom["kind"]) == {"on_off", "off_off"}


def write_v2_layout(demo, target, seed: int = 0) -> None:
    """Every V2 list from the demo's V1 lists: the clip lists as they are, and MoMs whose clip 2
    is a random clip of the split's unlabelled list (V2: "random unfiltered")."""
    rng = np.random.default_rng(seed)
    target.mkdir(parents=True)
    v1 = find_lists(demo, "filtered")
    for key, path in v1.items():
        if not key.is_mom:
            shutil.copy(path, target / key.file_name("unfiltered"))
    for split in (Split.VALIDATE, Split.TEST):
        unlabelled = read_clip_list(v1[ListKey(split)])
        for label in (ClipLabel.ONSCREEN, ClipLabel.OFFSCREEN):
            first = read_clip_list(v1[ListKey(split, label)])
            partners = unlabelled.iloc[rng.integers(0, len(unlabelled), len(first))]
            rows = np.column_stack([first.to_numpy(), partners.to_numpy()])
            key = ListKey(split, label, Partner.RANDOM)
            pd.DataFrame(rows, columns=MOM_COLUMNS).to_csv(
                target / key.file_name("unfiltered"), header=False, index=False
            )


def test_v2_layout(chain, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(chain, project, symlinks=True)
    demo = project / TEST_DATA / "01_raw/demo"
    lists_dir = project / "v2_lists"
    write_v2_layout(demo, lists_dir)
    assert {p.name for p in lists_dir.iterdir()} == set(release_list_names("unfiltered"))
    params = {"lists_dir": str(lists_dir), "list_prefix": "unfiltered", "video_root": str(demo)}
    run(project, "ingest", "calibrate", "evaluate", **params)

    moms = pd.read_parquet(project / TEST_DATA / "02_intermediate/mom_table.parquet")
    assert set(moms["kind"]) == {"on_random", "off_random"}
    clips = pd.read_parquet(project / TEST_DATA / "02_intermediate/clip_table.parquet")
    partners = moms.loc[moms.kind == "on_random", "clip_id_2"]
    labels = clips.set_index("clip_id").loc[partners, "label"]
    assert (labels == "").all()  # a random partner is not labelled off-screen
    release = ReleasedModel.load(project / TEST_DATA / "06_models/audioscope")
    assert release.calibration.split == "validate" and release.calibration.reached
    metrics = json.loads((project / TEST_DATA / "08_reporting/metrics.json").read_text())
    _figures(metrics)
    assert "mixture_si_snr_on_random" in metrics and "mixture_si_snr_on_off" not in metrics
    assert metrics["num_on_screen_moms"] > 0 and metrics["num_off_screen_moms"] > 0
    per_mom = pd.read_parquet(project / TEST_DATA / "08_reporting/per_mom.parquet")
    assert set(per_mom["kind"]) == {"on_random", "off_random"}
