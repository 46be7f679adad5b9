"""Pieces of ``torchvet docker`` (see :mod:`torchvet.action.docker.command`): the plan of a run
(inputs, environment, GPUs), the container log and the workspace snapshot.

Nothing here imports the ``docker`` package at module level, nor torch.
"""
