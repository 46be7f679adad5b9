"""A tiny project whose models and dataset torchvet checks (see pyproject.toml)."""
