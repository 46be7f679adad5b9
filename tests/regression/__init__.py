"""Tests of torchvet.regression, the snapshot/regression feature."""
