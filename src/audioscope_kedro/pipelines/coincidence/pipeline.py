from kedro.pipeline import Pipeline, node

from .nodes import score_and_filter_clips, train_coincidence_models


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train_coincidence_models,
                [
                    "clip_store",
                    "coincidence_checkpoints",
                    "params:coincidence",
                    "params:clip_seconds",
                ],
                ["coincidence_models", "coincidence_curve"],
                name="train_coincidence_models",
            ),
            node(
                score_and_filter_clips,
                ["clip_store", "coincidence_models", "params:coincidence", "params:clip_seconds"],
                ["coincidence_scores", "coincidence_filtered_clips", "coincidence_report"],
                name="score_and_filter_clips",
            ),
        ]
    )
