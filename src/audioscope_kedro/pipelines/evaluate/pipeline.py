from kedro.pipeline import Pipeline, node

from .nodes import configuration, evaluate_model, plot_evaluation, write_report


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluate_model,
                ["audioscope_model", "clip_store", "mom_table", "params:evaluate"],
                ["metrics", "evaluation_per_mom", "trade_off_curve", "roc_curve", "evaluation"],
                name="evaluate_model",
            ),
            node(
                plot_evaluation,
                ["evaluation", "audioscope_model"],
                ["trade_off_plot", "roc_plot", "examples_plot"],
                name="plot_evaluation",
            ),
            node(
                configuration,
                [
                    "params:coincidence",
                    "params:pretrain_audio",
                    "params:train",
                    "params:model",
                    "params:calibrate",
                ],
                "run_configuration",
                name="collect_configuration",
            ),
            node(
                write_report,
                [
                    "evaluation",
                    "audioscope_model",
                    "train_curve",
                    "coincidence_curve",
                    "params:evaluate",
                    "run_configuration",
                ],
                "evaluation_report",
                name="write_report",
            ),
        ]
    )
