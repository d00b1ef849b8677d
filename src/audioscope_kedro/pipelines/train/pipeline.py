from kedro.pipeline import Pipeline, node

from .nodes import train_audioscope


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train_audioscope,
                [
                    "clip_store",
                    "mom_table",
                    "coincidence_scores",
                    "pretrained_separator",
                    "train_checkpoints",
                    "tune_best_params",
                    "params:train",
                    "params:model",
                    "params:clip_seconds",
                ],
                ["trained_model", "train_curve"],
                name="train_audioscope",
            )
        ]
    )
