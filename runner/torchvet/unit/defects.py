"""Defects of a model that break every caller of the ``nn.Module`` API, found before any
check calls it.

An attribute assigned in ``__init__`` under the name of a Module method (``self.train =
True``, ``self.eval = cfg.eval``, ``self.parameters = [...]``) shadows the method: the
user's own ``model.train()`` raises, and so would every torchvet call. Found up front, it
is one verdict naming the attribute and the fix, not a crash inside torchvet.
"""

from __future__ import annotations

from torch import nn

# the Module methods torchvet (and any training script) calls on a model and its children
CALLED = ("train", "eval", "forward", "parameters", "named_parameters", "buffers",
          "named_buffers", "modules", "named_modules", "children", "named_children",
          "state_dict", "load_state_dict", "to", "zero_grad", "apply", "requires_grad_",
          "register_forward_hook", "register_forward_pre_hook", "get_submodule")


def shadowed_method(model: nn.Module) -> tuple[str, type] | None:
    """The first Module method a (sub)module's instance attribute shadows with something
    that cannot be called: (message, the module's class)."""
    for prefix, module in model.named_modules():
        own = vars(module)
        for name in CALLED:
            if name in own and not callable(own[name]):
                value = own[name]
                where = f"{prefix}." if prefix else ""
                message = (
                    f"{where or 'model.'}{name}() raises TypeError: "
                    f"'{type(value).__name__}' object is not callable — `self.{name}` is "
                    f"shadowed by an attribute in {type(module).__name__} "
                    f"(self.{name} = {value!r:.40}): rename the attribute")
                return message, type(module)
    return None

