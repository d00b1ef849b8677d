from kedro.pipeline import Pipeline, node

from .nodes import calibrate_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                calibrate_model,
                ["audioscope_model", "clip_store", "mom_table", "params:calibrate"],
                ["calibration", "calibration_curve"],
                name="calibrate_model",
            )
        ]
    )
