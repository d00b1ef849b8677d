from kedro.pipeline import Pipeline, node

from .nodes import evaluate_model, plot_evaluation, write_report


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluate_model,
                ["audioscope_model", "clip_store", "mom_table", "params:evaluate"],
                ["metrics", "trade_off_curve", "roc_curve", "evaluation"],
                name="evaluate_model",
            ),
            node(
                plot_evaluation,
                ["evaluation", "audioscope_model"],
                ["trade_off_plot", "roc_plot", "examples_plot"],
                name="plot_evaluation",
            ),
            node(
                write_report,
                ["evaluation", "audioscope_model", "train_curve", "params:evaluate"],
                "evaluation_report",
                name="write_report",
            ),
        ]
    )
