from kedro.pipeline import Pipeline, node

from .nodes import pretrain_separator


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                pretrain_separator,
                [
                    "clip_store",
                    "mom_table",
                    "pretrain_checkpoints",
                    "params:pretrain_audio",
                    "params:model",
                ],
                ["pretrained_separator", "pretrain_curve"],
                name="pretrain_separator",
            )
        ]
    )
