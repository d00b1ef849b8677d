"""The demo dataset's plan and parameters: labelled clips must not differ in what they show or
how loud they are, only in whether what is seen is heard."""

import pytest
import yaml

from audioscope_kedro.demo.dataset import (
    DemoDataParams,
    build_scene,
    demo_params,
    plan_scenes,
    scene_config,
)
from audioscope_kedro.parameters import ParameterError
from tests.helpers import PROJECT_ROOT

PARAMS = {
    "seed": 0,
    "sample_rate": 8000,
    "duration": 1.0,
    "fps": 8.0,
    "width": 32,
    "height": 32,
    "max_on_screen": 2,
    "max_off_screen": 2,
    "counts": {"test_onscreen": 30, "test_offscreen": 30, "train": 30},
}


def test_shipped_blocks_parse():
    base = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_demo_data.yml").read_text())
    test = yaml.safe_load((PROJECT_ROOT / "conf/test/parameters_demo_data.yml").read_text())
    for block in (base["demo_data"], {**base["demo_data"], **test["demo_data"]}):
        params = demo_params(block)
        assert isinstance(params, DemoDataParams)
        assert params.visible_objects[0] >= params.max_on_screen


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"distractor_probability": 0.3},
            r"unknown parameter\(s\) demo_data.distractor_probability",
        ),
        ({"counts": {"tset": 3}}, "unknown list"),
        ({"visible_objects": [1, 3]}, "would tell on-screen clips apart"),
        ({"camera_pan": -0.1}, "negative"),
    ],
)
def test_bad_parameters_are_named(change, message):
    with pytest.raises(ParameterError, match=message):
        demo_params({**PARAMS, **change})


def test_labelled_clips_draw_their_sounds_alike():
    """On- and off-screen-only clips have 1..min(max_on, max_off) sounds: neither is louder."""
    plan = plan_scenes({**PARAMS, "max_off_screen": 3})
    on = plan[plan.kind == "onscreen"]
    off = plan[plan.kind == "offscreen"]
    assert (on.n_off_screen == 0).all() and (off.n_on_screen == 0).all()
    assert set(on.n_on_screen) == set(off.n_off_screen) == {1, 2}
    unlabelled = plan[plan.kind == "unlabelled"]
    assert unlabelled.n_off_screen.max() == 3


def test_scenes_follow_the_plan():
    plan = plan_scenes(PARAMS)
    config = scene_config(PARAMS)
    for row in plan.head(10).to_dict("records"):
        scene = build_scene(row, PARAMS)
        roles = [s.role for s in scene.sources]
        assert roles.count("on_screen") == row["n_on_screen"]
        assert roles.count("off_screen") == row["n_off_screen"]
        assert config.visible_objects[0] <= len(scene.visible) <= config.visible_objects[1]
