"""The worker runtime: everything that runs inside a unit's process and imports torch,
and knows no check — building the unit from its factory (spec, adapters, inputs), the
context the checks read (with a generic memo), seeding, time budgets, the memory plan,
and pointing verdicts at source lines. The checks (:mod:`torchvet.checks`) import it,
never the other way round: they hand themselves to the worker as a
:class:`~torchvet.unit.suite.Suite`."""
