"""Evaluation: operating points and calibration, running a model over MoMs, the report."""
