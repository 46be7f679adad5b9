"""data.*: datasets that load, batch, label and reproduce the way training assumes.

Every data check reads samples through one memoised scan (:mod:`.scan`) and compares
them through one sample-layout model (:mod:`.layout`). The checks live by what they
look at:

- :mod:`.structure` — data.length, data.samples, data.finite
- :mod:`.labels` — data.labels
- :mod:`.loading` — data.collate, data.reproducible
- :mod:`.workers` — data.workers (with the pickle forensics of :mod:`.pickling`)
- :mod:`.fit` — data.model_fit

Importing this package registers all eight.
"""

from __future__ import annotations

from . import fit, labels, loading, structure, workers

__all__ = ["fit", "labels", "loading", "structure", "workers"]
