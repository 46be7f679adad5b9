"""checks.shared.comparison: the first output leaf that differs between two passes, with
a dtype-aware tolerance, named by its path."""

from __future__ import annotations

import torch

from torchvet.checks.shared.comparison import first_difference


def test_first_difference_is_dtype_aware_and_names_the_leaf() -> None:
    def tol(t: torch.Tensor) -> tuple[float, float]:
        return (1e-5, 1.3e-6) if t.dtype == torch.float32 else (1e-5, 1.6e-2)

    a = {"logits": torch.ones(2, 3), "ids": torch.tensor([1, 2])}
    assert first_difference(a, {"logits": torch.ones(2, 3) + 1e-7, "ids": torch.tensor([1, 2])},
                            tol) is None
    diff = first_difference(a, {"logits": torch.ones(2, 3) + 1e-2, "ids": torch.tensor([1, 2])},
                            tol)
    assert diff is not None and diff.path == 'out["logits"]' and "differs by 0.01" in str(diff)
    bf = torch.ones(4, dtype=torch.bfloat16)
    assert first_difference(bf, bf * 1.0078125, tol) is None  # one bf16 ulp: within rtol
    assert "differs in 1 of 2" in str(first_difference(a, {**a, "ids": torch.tensor([1, 3])},
                                                       tol))
    assert "changes structure" in str(first_difference(a, (a["logits"],), tol))
    nan = torch.tensor([float("nan"), 1.0])
    assert first_difference(nan, nan.clone(), tol) is None  # NaN in both is not a change
