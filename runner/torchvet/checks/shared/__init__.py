"""Shared computations: what more than one check reads, computed once per unit and
memoised on the context (``ctx.memo``).

- :mod:`.training_run` — the 3-step training run of training.loss/gradients/update/frozen
- :mod:`.probe` — one instrumented training step at init (the learning diagnostics)
- :mod:`.runs` — short runs with the user's optimizer: one fixed batch, or the dataset
- :mod:`.one_batch_fit` — memorising one batch (training.overfit)
- :mod:`.loss_capture` — the loss's calls replayed and recorded (training, learning)
- :mod:`.forward_warnings` — warnings raised in the forward, with their lines
- :mod:`.comparison` — the seeded eval forward and the first difference of two passes
- :mod:`.data_scan` — the sample scan every data check reads

They hold no check; area modules import them, never each other.
"""
