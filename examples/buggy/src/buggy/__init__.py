"""Classic PyTorch bugs, one per factory. `torchvet run examples/buggy` names each."""
