"""forward.* and training.*: each bug caught by the right check, with the culprit named
and located; healthy real-world shapes pass."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conftest import assert_status, line_in, verdict, vet
from tests.fixtures import models_buggy as buggy
from tests.fixtures import models_real as real
from torchvet.results import Status

BUGGY_FILE = Path(buggy.__file__)
WARN_CHECKS = {"forward.probabilities", "training.loss_at_init"}

# where each bug must be reported: a snippet of the culprit line in models_buggy.py
EXPECTED_LINE = {
    "batch_mixing_view": "# BUG: meant h.transpose",
    "softmax_over_batch": "# BUG: normalises across",
    "detached_encoder": "self.encoder = nn.Sequential",
    "dead_layer": "self.unused_proj = nn.Linear",
    "log_of_activations": "# BUG: log of values",
    "numpy_constant": "# BUG: float64 creeps",
    "functional_dropout": "# BUG: training defaults",
    "squeeze_all": "# BUG: at batch size 1",
    "hard_coded_batch": "# BUG: batch size hard-coded",
    "inplace_breaks_backward": "# BUG: sigmoid's backward",
    "forgotten_freeze": "self.backbone = nn.Sequential",
    "times_zero": "self.body = nn.Linear",
    "overflow": "# BUG: exp overflows",
    "batch_stats_in_eval": "h = F.batch_norm(",
    "eval_noise": "# BUG: noise also",
    "probabilities_into_ce": "class ProbabilityHead",
    "sigmoid_into_bce_with_logits": "class SigmoidHead",
    "huge_logits_at_init": "class HugeLogits",
    "shuffled_labels": "def shuffled_labels",
    "loss_item": "def step(model: nn.Module, x: torch.Tensor)",
    "optimizer_misses_parameters": "def optimizer(params: Any)",
    "transposed_output": "class Transposed",
    "no_tensor_output": "class NoTensor",
    "shape_error": "# BUG: 8 features",
}


def line_of(snippet: str) -> int:
    return line_in(BUGGY_FILE, snippet)


@pytest.mark.parametrize("name", sorted(buggy.BUGS))
def test_bug_is_caught_by_its_check(name: str) -> None:
    check_id, fragment = buggy.BUGS[name]
    result = verdict(getattr(buggy, name), check_id)
    expected = Status.WARNED if check_id in WARN_CHECKS else Status.FAILED
    assert_status(result, expected, fragment)
    assert result.file and result.file.endswith("models_buggy.py"), result.file
    assert result.line == line_of(EXPECTED_LINE[name]), (result.line, result.message)


def test_every_forward_and_training_check_has_a_bug() -> None:
    covered = {check for check, _ in buggy.BUGS.values()}
    from torchvet.checks.catalogue import CATALOGUE

    wanted = {c for c in CATALOGUE if c.startswith(("forward.", "training."))}
    assert wanted <= covered, wanted - covered


@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_real_architectures_pass_forward_and_training(name: str) -> None:
    results = vet(real.REAL_MODELS[name], ["forward", "training"])
    bad = {k: r for k, r in results.items() if r.status not in (Status.PASSED, Status.SKIPPED)}
    assert not bad, {k: r.message for k, r in bad.items()}
    skipped = {k for k, r in results.items() if r.status is Status.SKIPPED}
    no_loss = {"forward.probabilities", "training.overfit", "training.loss_at_init"}
    assert skipped <= no_loss, skipped


def test_dead_parameter_message_names_the_fix() -> None:
    result = verdict(buggy.detached_encoder, "training.gradients")
    assert 'declare unused=["encoder.0.*"]' in result.message
    assert "encoder.0.weight" in result.message


def test_declared_unused_parameters_are_not_reported() -> None:
    def factory() -> dict[str, Any]:
        return {"model": buggy.DeadLayer(), "unused": ["unused_proj.*"]}

    assert_status(verdict(factory, "training.gradients"), Status.PASSED)
    assert_status(verdict(factory, "training.update"), Status.PASSED)


def test_declared_frozen_parameters_pass_and_must_stay_unchanged() -> None:
    def declared() -> dict[str, Any]:
        return {"model": buggy.ForgottenFreeze(), "frozen": ["backbone.*"]}

    assert_status(verdict(declared, "training.frozen"), Status.PASSED, "stayed unchanged")

    def declared_but_trained() -> dict[str, Any]:
        return {"model": nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), "frozen": ["0.*"]}

    assert_status(verdict(declared_but_trained, "training.frozen"), Status.FAILED,
                  "declared frozen but changed")


def test_zero_initialised_layers_get_their_gradient_one_step_later() -> None:
    results = vet(real.resnet, ["training.gradients", "training.update"])
    assert all(r.status is Status.PASSED for r in results.values()), results
    assert "2 step(s)" in results["training.update"].message or "3 step(s)" in (
        results["training.update"].message)


def test_batchnorm_with_batch_size_one_is_not_a_bug() -> None:
    def factory() -> dict[str, Any]:
        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        return {"model": model, "batch_size": 1}

    results = vet(factory, ["forward", "training"])
    bad = {k: r.message for k, r in results.items()
           if r.status not in (Status.PASSED, Status.SKIPPED)}
    assert not bad


def test_auxiliary_heads_only_in_train_mode_get_gradients() -> None:
    results = vet(real.googlenet, ["training.gradients", "forward.runs"])
    assert_status(results["training.gradients"], Status.PASSED)
    assert_status(results["forward.runs"], Status.PASSED, "1 output tensor")


def test_softmax_head_without_loss_still_trains_through_the_surrogate() -> None:
    result = verdict(real.softmax_mlp, "training.gradients")
    assert_status(result, Status.PASSED)
    # a naive out.sum() surrogate would give exactly zero gradients here
    model = real.softmax_mlp()
    model(torch.randn(2, 10)).sum().backward()
    assert all(float(p.grad.abs().max()) < 1e-6 for p in model[0].parameters())


def test_padding_idx_embeddings_are_not_dead() -> None:
    assert_status(verdict(real.embedding_bag, "training.gradients"), Status.PASSED)


def test_inferred_inputs_that_do_not_fit_skip_with_instructions() -> None:
    class NeedsImages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x)

    results = vet(NeedsImages, ["forward.runs", "training.loss"])
    for result in results.values():
        assert_status(result, Status.SKIPPED, "cannot infer inputs", "input_shape")


def test_forward_failure_makes_dependent_checks_skip_naming_forward_runs() -> None:
    results = vet(buggy.shape_error, ["forward.runs", "forward.finite", "forward.dtype"])
    assert_status(results["forward.runs"], Status.FAILED, "mat1 and mat2")
    assert_status(results["forward.finite"], Status.SKIPPED, "see forward.runs")


def test_output_shape_declarations() -> None:
    def declared(shape: Any) -> Any:
        return lambda: {"model": nn.Linear(4, 3), "output_shape": shape}

    assert_status(verdict(declared([-1, 3]), "forward.shape"), Status.PASSED)
    assert_status(verdict(declared([3]), "forward.shape"), Status.PASSED)
    assert_status(verdict(declared([-1, 5]), "forward.shape"), Status.FAILED, "declared (*, 5)")


def test_output_dtype_declaration_accepts_intended_float64() -> None:
    def factory() -> dict[str, Any]:
        return {"model": buggy.NumpyConstant(), "output_dtype": "float64"}

    assert_status(verdict(factory, "forward.dtype"), Status.PASSED)


def test_declared_xfail_and_skip() -> None:
    def xfail() -> dict[str, Any]:
        return {"model": buggy.DeadLayer(), "xfail": {"training.gradients": "known dead head"}}

    assert_status(verdict(xfail, "training.gradients"), Status.XFAILED, "known dead head")

    def xpass() -> dict[str, Any]:
        return {"model": nn.Linear(4, 2), "xfail": {"training.*": "tracked in #12"}}

    assert_status(verdict(xpass, "training.gradients"), Status.XPASSED, "remove the xfail")

    def skip() -> dict[str, Any]:
        return {"model": buggy.DeadLayer(), "skip": {"training": "covered elsewhere"}}

    assert_status(verdict(skip, "training.gradients"), Status.SKIPPED, "covered elsewhere")


def test_unknown_spec_keys_warn_by_name() -> None:
    results = vet(lambda: {"model": nn.Linear(4, 2), "outptu_shape": (2, 2)}, ["forward.runs"])
    assert_status(results["spec"], Status.WARNED, "'outptu_shape'", "did you mean 'output_shape'")


def test_verdicts_are_reproducible_with_the_same_seed() -> None:
    def statuses(seed: int) -> dict[str, tuple[str, str]]:
        out = {}
        for name in ("functional_dropout", "times_zero", "shuffled_labels"):
            for cid, r in vet(getattr(buggy, name), ["forward", "training"], seed=seed).items():
                out[f"{name}:{cid}"] = (r.status.value, r.message)
        return out

    assert statuses(0) == statuses(0)


@pytest.mark.parametrize("seed", [1, 7])
def test_seed_changes_inputs_but_not_verdicts_on_real_architectures(seed: int) -> None:
    for name in ("resnet", "lstm", "seq2seq"):
        checks = ["forward", "training"]
        base = {k: r.status for k, r in vet(real.REAL_MODELS[name], checks).items()}
        other = {k: r.status for k, r in
                 vet(real.REAL_MODELS[name], ["forward", "training"], seed=seed).items()}
        assert base == other, name


def test_buggy_fixtures_keep_their_bug_comment_on_the_reported_line() -> None:
    source = inspect.getsource(buggy)
    assert source.count("# BUG") >= 15


class SlowForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.05)
        return self.fc(x)


def test_a_check_past_its_budget_is_stopped_and_skipped_with_the_fix() -> None:
    from torchvet.project.config import UnitConfig

    config = UnitConfig(budgets={"forward.batch_sizes": 0.1})
    results = vet(SlowForward, ["forward.runs", "forward.batch_sizes"], config=config)
    assert_status(results["forward.runs"], Status.PASSED)
    assert_status(results["forward.batch_sizes"], Status.SKIPPED,
                  "did not finish within its 0.1 s budget",
                  'budgets = { "forward.batch_sizes" =')


def test_overfit_skips_up_front_when_its_steps_cannot_fit_the_budget() -> None:
    from torchvet.project.config import UnitConfig

    def factory() -> dict[str, Any]:
        return {"model": SlowForward(), "loss": nn.CrossEntropyLoss()}

    config = UnitConfig(budgets={"training.overfit": 1.0})
    result = verdict(factory, "training.overfit", config=config)
    assert_status(result, Status.SKIPPED, "exceed the 1 s budget of training.overfit")
    assert result.duration < 1.0


def test_probabilities_is_not_fooled_by_a_reused_tensor_id() -> None:
    """An attention softmax freed before the logits exist can leave its id to them (the
    tiny_gpt false alarm of the benchmark): only the very tensor a softmax returned counts."""
    import torch
    import torch.nn.functional as F

    from torchvet.checks.forward import _LossCapture, looks_like_probabilities

    capture = _LossCapture()
    with capture:
        attention = torch.softmax(torch.randn(4, 6), dim=-1)
        freed = id(attention)
        del attention
        kept = []
        for _ in range(10_000):
            logits = torch.randn(4, 6) * 3
            if id(logits) == freed:
                break
            kept.append(logits)
        else:
            raise AssertionError("no tensor reused the freed id: the test cannot show the bug")
        F.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
        F.cross_entropy(torch.softmax(logits, dim=-1), torch.tensor([0, 1, 2, 3]))
    assert [looks_like_probabilities(k, capture) for k in range(2)] == [False, True]
