"""GitHub Actions, one home: the workflow commands torchvet writes and reads (escaping,
stop-commands, the variables user code must never see) and the reporter that turns a
finished run into annotations, the job summary and step outputs. Below ``session``;
nothing of the core imports it."""
