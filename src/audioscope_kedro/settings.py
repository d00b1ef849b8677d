"""Project settings (Kedro defaults except where a comment says why)."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment such as `test` overrides single keys (`demo_data.counts.train`) instead
    # of replacing whole parameter blocks.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
}
