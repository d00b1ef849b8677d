"""Project settings (Kedro defaults except where a comment says why)."""

from kedro.config import OmegaConfigLoader

from audioscope_kedro.hooks import RunLockHooks

# Two runs of one pipeline on one data root would write the same outputs at once: the second
# is refused with a message naming the first (hooks.py; tune workers and the node runs of a
# multi-node ingest are the designed exceptions).
HOOKS = (RunLockHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment such as `test` overrides single keys (`demo_data.counts.train`) instead
    # of replacing whole parameter blocks.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
}
