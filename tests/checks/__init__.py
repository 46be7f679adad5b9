"""Tests of torchvet.checks, one module per check module."""
