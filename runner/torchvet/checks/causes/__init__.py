"""Cause explainers: why a check failed, named with its line. They hold no check; a
check calls them once it has something to explain (never on a healthy model, where
they could cost).

- :mod:`.forward_errors` — why a forward raised (forward.runs, data.model_fit)
- :mod:`.batch_mixing` — which module mixes samples (forward.batch_independence)
- :mod:`.side_effects` — what an eval forward changes besides its output (forward.*)
- :mod:`.gradient_causes` — why a parameter gets no usable gradient (training.gradients)
- :mod:`.unregistered` — state ``nn.Module`` does not know about (state, portability)
- :mod:`.meta_device` — the meta-device run behind portability.device
- :mod:`.findings` — what a learning diagnostic found, cited by training.overfit and
  learning.progress
"""
