"""Reporters are observers: they only read results (terminal, JUnit, JSON, GitHub)."""
