"""What to check, decided in the parent process without torch: discovery of the
entry points, the ``[tool.torchvet]`` configuration, ``--changed-since`` and ``--shard``."""
