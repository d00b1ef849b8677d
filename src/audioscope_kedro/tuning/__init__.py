"""Optuna studies over the attention variants."""
