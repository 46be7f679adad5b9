"""Tests of torchvet.checks.data, one module per data module."""
