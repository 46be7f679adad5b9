"""Tests of torchvet.unit, the worker side."""
