"""Test time and scoring: the predictor (scales, flip, padding), evaluation, metrics, the CRF grid search."""
