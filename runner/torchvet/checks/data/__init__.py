"""data.*: datasets that load, batch, label and reproduce the way training assumes.

Every data check reads samples through one memoised scan
(:mod:`torchvet.checks.shared.data_scan`) and compares
them through one sample-layout model (:mod:`.layout`). The checks live by what they
look at:

- :mod:`.structure` — data.length, data.samples, data.finite
- :mod:`.distinct` — data.distinct, data.idempotent
- :mod:`.labels` — data.labels
- :mod:`.loading` — data.collate, data.reproducible
- :mod:`.workers` — data.workers (with the pickle forensics of :mod:`.pickling`)
- :mod:`.leakage` — data.leakage
- :mod:`.fit` — data.model_fit

Importing this package registers all eleven.
"""

from __future__ import annotations

from . import distinct, fit, labels, leakage, loading, structure, workers

__all__ = ["distinct", "fit", "labels", "leakage", "loading", "structure", "workers"]
