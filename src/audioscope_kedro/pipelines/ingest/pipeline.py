from kedro.pipeline import Pipeline, node

from .nodes import build_clip_table, build_mom_table, plan_clip_store, summarise_ingest

# The nodes that several machines run at once, each with its own `ingest.node_rank` of
# `ingest.num_nodes` (docs/scale.md); the others write files every node would share (the
# tables, the summary), so they run once. The run lock (hooks.py) lets runs of only these
# nodes go on side by side, one per node rank.
NODE_RANK_NODES = frozenset({"decode_clips"})


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                build_clip_table,
                ["audioscope_lists", "params:ingest", "params:clip_seconds"],
                "clip_table",
                name="build_clip_table",
            ),
            node(build_mom_table, "audioscope_lists", "mom_table", name="build_mom_table"),
            node(
                plan_clip_store, ["clip_table", "params:ingest"], "clip_store", name="decode_clips"
            ),
            node(summarise_ingest, "clip_store", "ingest_summary", name="summarise_ingest"),
        ]
    )
