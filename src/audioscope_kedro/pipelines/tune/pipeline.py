from kedro.pipeline import Pipeline, node

from .nodes import tune_attention


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                tune_attention,
                [
                    "clip_store",
                    "mom_table",
                    "coincidence_scores",
                    "pretrained_separator",
                    "params:tune",
                    "params:train",
                    "params:model",
                    "params:clip_seconds",
                ],
                ["tune_trials", "tune_best_params"],
                name="tune_attention",
            )
        ]
    )
