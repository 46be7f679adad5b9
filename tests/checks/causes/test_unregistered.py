"""checks.causes.unregistered: module attributes that hold layers, parameters or tensors
outside what nn.Module registers are found (aliases of registered modules are not) and
described with their fix."""

from __future__ import annotations

import torch
from torch import nn

from tests.fixtures import models_portability as models
from torchvet.checks.causes.unregistered import Unregistered, find_unregistered


def test_find_unregistered_ignores_aliases_of_registered_modules() -> None:
    assert find_unregistered(models.AliasedList()) == []
    found = find_unregistered(models.PlainListMLP())
    assert [(u.name, u.kind, u.modules) for u in found] == [("self.layers", "list", 3)]


def test_unregistered_descriptions_and_fixes() -> None:
    tensor = Unregistered("", "mask", "tensor", tensors=[("self.mask", torch.ones(3))])
    assert tensor.describe() == "self.mask is a plain tensor attribute"
    assert tensor.fix() == "use self.register_buffer('mask', ...)"
    params = Unregistered("block", "weights", "list", parameters=2,
                          tensors=[("a", nn.Parameter(torch.ones(1))),
                                   ("b", nn.Parameter(torch.ones(1)))])
    assert params.describe() == "self.block.weights is a plain list of 2 parameters"
    assert params.fix() == "use nn.ParameterList"
