from kedro.pipeline import Pipeline, node

from .nodes import pretrain_audio


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                pretrain_audio,
                [
                    "clip_store",
                    "mom_table",
                    "pretrain_checkpoints",
                    "params:pretrain_audio",
                    "params:model",
                    "params:clip_seconds",
                ],
                ["pretrained_separator", "pretrain_curve"],
                name="pretrain_separator",
            )
        ]
    )
