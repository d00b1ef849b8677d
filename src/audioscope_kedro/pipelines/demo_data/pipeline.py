from kedro.pipeline import Pipeline, node

from .nodes import (
    list_demo_objects,
    make_demo_lists,
    plan_demo_scenes,
    prepare_demo_images,
    render_demo_stems,
    render_demo_videos,
)

_SCENES = ["demo_scene_plan", "params:demo_data", "params:clip_seconds"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                plan_demo_scenes,
                ["params:demo_data", "params:clip_seconds", "demo_image_manifest"],
                "demo_scene_plan",
                name="plan_demo_scenes",
            ),
            node(
                prepare_demo_images,
                ["params:demo_data", "params:clip_seconds"],
                "demo_image_manifest",
                name="prepare_demo_images",
            ),
            node(
                render_demo_videos,
                [*_SCENES, "demo_image_manifest"],
                "demo_videos",
                name="render_demo_videos",
            ),
            node(
                render_demo_stems,
                [*_SCENES, "demo_image_manifest"],
                ["demo_stems", "demo_stem_manifest"],
                name="render_demo_stems",
            ),
            node(
                list_demo_objects,
                [*_SCENES, "demo_image_manifest"],
                "demo_visible_objects",
                name="list_demo_objects",
            ),
            node(
                make_demo_lists,
                _SCENES,
                "demo_lists",
                name="make_demo_lists",
            ),
        ]
    )
