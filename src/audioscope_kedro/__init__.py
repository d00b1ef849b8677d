"""audioscope-kedro: open AudioScope / AudioScopeV2 on-screen sound separation."""

__version__ = "0.1.0"
