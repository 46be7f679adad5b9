"""The worker side: everything that runs inside a unit's process and imports torch —
building the unit from its factory, the shared context the checks read, inputs, seeding,
the short training run, and pointing verdicts at source lines."""
