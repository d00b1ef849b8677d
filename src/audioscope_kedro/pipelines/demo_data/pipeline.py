from kedro.pipeline import Pipeline, node

from .nodes import make_demo_lists, plan_demo_scenes, render_demo_stems, render_demo_videos


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                plan_demo_scenes,
                ["params:demo_data", "params:clip_seconds"],
                "demo_scene_plan",
                name="plan_demo_scenes",
            ),
            node(
                render_demo_videos,
                ["demo_scene_plan", "params:demo_data", "params:clip_seconds"],
                "demo_videos",
                name="render_demo_videos",
            ),
            node(
                render_demo_stems,
                ["demo_scene_plan", "params:demo_data", "params:clip_seconds"],
                ["demo_stems", "demo_stem_manifest"],
                name="render_demo_stems",
            ),
            node(
                make_demo_lists,
                ["demo_scene_plan", "params:demo_data", "params:clip_seconds"],
                "demo_lists",
                name="make_demo_lists",
            ),
        ]
    )
