"""The GitHub Action, without torch: the entrypoint the image runs, its inputs, the
workflow-command rules, and ``torchvet docker`` (the action run locally)."""
