"""Real-size models in plain torch for torchvet's benchmark (random init, no downloads)."""
