"""``torchvet docker``'s pieces: the action's image run locally as the Actions runner
runs it (the command itself is :mod:`torchvet.commands.docker`).

:mod:`.plan` (each container's inputs and environment, decided without a daemon),
:mod:`.client` (the daemon and the image), :mod:`.matrix` (the cells), :mod:`.logs` (the
container's log on the terminal), :mod:`.workspace` (the snapshot a cell mounts). The
``docker`` package is imported only when the command runs (``client.load_docker``,
``plan.device_requests``); nothing here imports torch.
"""
