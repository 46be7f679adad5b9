"""Benchmark models for torchvet (bench/run.py): small, healthy, varied."""
