"""The commands of ``torchvet``, one module each: a plain function with explicit
arguments that returns the exit code. ``cli`` parses the command line and calls them;
they raise :class:`~torchvet.errors.UsageError` for what the user must fix."""
