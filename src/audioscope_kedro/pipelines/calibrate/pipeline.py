from kedro.pipeline import Pipeline, node

from .nodes import assemble_release, calibrate_trained_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                calibrate_trained_model,
                ["trained_model", "clip_store", "mom_table", "params:calibrate"],
                ["calibration", "calibration_curve"],
                name="calibrate_model",
            ),
            node(
                assemble_release,
                ["trained_model", "calibration"],
                "audioscope_model",
                name="assemble_release",
            ),
        ]
    )
