"""training.*: each training bug caught by the right check, with the culprit named and
located; declared unused/frozen parameters honoured; healthy real-world shapes pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures import models_buggy as buggy
from tests.fixtures import models_real as real
from tests.fixtures.corpus import healthy_patterns, learning
from tests.fixtures.models_resnet50 import resnet50_classifier
from tests.helpers import assert_status, line_in, verdict, vet
from torchvet.checks.catalogue import CATALOGUE
from torchvet.project.config import UnitConfig
from torchvet.results import Status

BUGGY_FILE = Path(buggy.__file__)
WARN_BUGS = {"huge_logits_at_init", "shuffled_labels", "forgotten_freeze"}
TRAINING_BUGS = {name: bug for name, bug in buggy.BUGS.items()
                 if bug[0].startswith("training.")}

# where each bug must be reported: a snippet of the culprit line in models_buggy.py
EXPECTED_LINE = {
    "detached_encoder": "self.encoder = nn.Sequential",
    "dead_layer": "self.unused_proj = nn.Linear",
    "inplace_breaks_backward": "# BUG: sigmoid's backward",
    "forgotten_freeze": "self.backbone = nn.Sequential",
    "times_zero": "self.body = nn.Linear",
    "huge_logits_at_init": "class HugeLogits",
    "shuffled_labels": "def shuffled_labels",
    "loss_item": "def step(model: nn.Module, x: torch.Tensor)",
    "optimizer_misses_parameters": "def optimizer(params: Any)",
    "nll_on_raw_scores": "def nll_on_raw_scores",
}


@pytest.mark.parametrize("name", sorted(TRAINING_BUGS))
def test_bug_is_caught_by_its_check(name: str) -> None:
    check_id, fragment = TRAINING_BUGS[name]
    result = verdict(getattr(buggy, name), check_id)
    expected = Status.WARNED if name in WARN_BUGS else Status.FAILED
    assert_status(result, expected, fragment)
    assert result.file and result.file.endswith("models_buggy.py"), result.file
    assert result.line == line_in(BUGGY_FILE, EXPECTED_LINE[name]), (result.line,
                                                                       result.message)


def test_every_training_check_has_a_bug() -> None:
    covered = {check for check, _ in TRAINING_BUGS.values()}
    wanted = {c for c in CATALOGUE if c.startswith("training.")}
    assert wanted <= covered, wanted - covered


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


class CountingForward(nn.Module):
    """Counts forward passes across every copy the checks make of it."""

    calls = 0

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        return self.fc(x)


def counting() -> dict[str, Any]:
    return {"model": CountingForward(), "inputs": torch.randn(2, 4),
            "target": torch.tensor([0, 1]), "loss": nn.CrossEntropyLoss()}


def test_overfit_is_decided_by_step_counts_not_by_the_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def passes() -> tuple[str, int]:
        monkeypatch.setattr(CountingForward, "calls", 0)
        result = verdict(counting, "training.overfit")
        return result.message, CountingForward.calls

    first = passes()
    assert first == passes()
    assert "in " in first[0] and "step(s) with Adam lr 0.01" in first[0], first


def test_overfit_skips_only_when_its_budget_truly_runs_out() -> None:
    tight = UnitConfig(budgets={"training.overfit": 0.001})
    result = verdict(lambda: learning.xor_sigmoid(), "training.overfit", config=tight)
    assert_status(result, Status.SKIPPED, "did not finish within its 0.001 s budget")


@pytest.mark.parametrize("factory", [
    lambda: learning.quadratic_regressor(None),   # large targets: 2804 -> 1734 in 50 steps
    lambda: learning.titanic_sigmoid_mse(None),   # sigmoid + MSE: a slow, steady fall
    lambda: learning.threshold_logistic(True),    # logistic regression
    learning.xor_sigmoid,                         # a plateau, then it learns
], ids=["large_targets", "sigmoid_mse", "logistic", "xor"])
def test_overfit_never_fails_a_slow_learner(factory: Any) -> None:
    assert_status(verdict(factory, "training.overfit"), Status.PASSED)


def test_a_plateau_with_a_mechanism_fails_naming_it() -> None:
    result = verdict(lambda: learning.titanic_head(nn.Softmax(dim=1), nn.BCELoss()),
                     "training.overfit")
    assert_status(result, Status.FAILED, "levels off", "far from",
                  "likely cause (learning.output_vs_loss)", "softmax over dim 1")
    assert {"Adam lr 0.01", "your optimizer", "Adam lr 0.001"} <= set(result.data["curves"])


def test_a_plateau_nothing_explains_warns_with_its_curve() -> None:
    result = verdict(buggy.shuffled_labels, "training.overfit")
    assert_status(result, Status.WARNED, "no learning diagnostic names a mechanism")
    assert "Adam lr 0.01 (plateau)" in result.details


def _healthy_pattern(name: str) -> Any:
    return next(c for c in healthy_patterns.CASES if c.name == name).factory


def test_a_min_max_step_is_skipped_not_judged() -> None:
    assert_status(verdict(_healthy_pattern("gan"), "training.overfit"), Status.SKIPPED,
                  "opposing objectives", "discriminator.0")


def test_a_declared_adversarial_step_is_skipped() -> None:
    def factory() -> dict[str, Any]:
        return {**learning.sine_regressor(False), "training": "adversarial"}

    assert_status(verdict(factory, "training.overfit"), Status.SKIPPED,
                  'training="adversarial" is declared')


def test_a_loss_whose_target_the_step_moves_is_skipped_when_it_levels_off() -> None:
    for seed in range(2):
        assert_status(verdict(_healthy_pattern("moco"), "training.overfit", seed=seed),
                      Status.SKIPPED, "queue")


def test_loss_at_init_reads_train_mode_on_a_fresh_resnet50() -> None:
    """Eval mode at init runs 53 BatchNorms on running statistics of (0, 1): the logits
    blow up. The first step trains in train mode, where the loss is near ln(1000)."""
    for seed in range(5):
        result = verdict(resnet50_classifier, "training.loss_at_init", seed=seed)
        assert_status(result, Status.PASSED, "near ln(1000) = 6.91")
        assert "train mode" in result.details and "eval mode, batch 2" in result.details


def test_loss_at_init_skips_in_batch_contrastive_logits() -> None:
    assert_status(verdict(_healthy_pattern("clip"), "training.loss_at_init"), Status.SKIPPED,
                  "in-batch logits", "learned temperature")


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
        other = {k: r.status
                 for k, r in vet(real.REAL_MODELS[name], checks, seed=seed).items()}
        assert base == other, name


# --------------------------------------------------------------------------- who moved it


class Online(nn.Module):
    """An online network and an EMA target the step moves under no_grad (BYOL)."""

    def __init__(self, target_trainable: bool = False) -> None:
        super().__init__()
        self.online = nn.Linear(4, 4)
        self.target = nn.Linear(4, 4)
        self.target.requires_grad_(target_trainable)
        self.target_trainable = target_trainable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.online(x)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for t, o in zip(self.target.parameters(), self.online.parameters(), strict=True):
                t.mul_(0.9).add_(o, alpha=0.1)
        target = self.target(x) if self.target_trainable else self.target(x).detach()
        return (self(x) - target).pow(2).mean() + self(x).pow(2).mean()


def ema_spec(**extra: Any) -> dict[str, Any]:
    return {"model": Online(), "inputs": lambda b: torch.randn(b, 4),
            "step": lambda model, x: model.step(x), **extra}


def test_a_declared_frozen_ema_target_moved_by_the_model_s_own_code_passes() -> None:
    result = verdict(lambda: ema_spec(frozen=["target.*"]), "training.frozen")
    assert_status(result, Status.PASSED, "updated by the model's own code, not by the optimizer",
                  '"target.*"')


def test_an_undeclared_ema_target_is_inferred_not_called_a_forgotten_freeze() -> None:
    assert_status(verdict(ema_spec, "training.frozen"), Status.PASSED,
                  "updated by the model's own code")


def test_a_declared_frozen_parameter_the_optimizer_changes_still_fails() -> None:
    def trained_target() -> dict[str, Any]:
        return {**ema_spec(frozen=["target.*"]), "model": Online(target_trainable=True)}

    assert_status(verdict(trained_target, "training.frozen"), Status.FAILED,
                  "target.weight", "declared frozen but changed during training",
                  "the optimizer updated it")


def test_a_frozen_parameter_nothing_updates_is_still_a_forgotten_freeze() -> None:
    def never_updated() -> dict[str, Any]:
        return {"model": Online(), "inputs": lambda b: torch.randn(b, 4),
                "step": lambda model, x: model(x).pow(2).mean()}

    assert_status(verdict(never_updated, "training.frozen"), Status.WARNED,
                  "target.weight", "not declared frozen and nothing updates it",
                  'frozen=["target.*"]')


def test_the_ema_declaration_covers_an_update_the_short_run_does_not_see() -> None:
    def later() -> dict[str, Any]:  # the EMA starts after a warm-up the run never reaches
        return {"model": Online(), "inputs": lambda b: torch.randn(b, 4),
                "step": lambda model, x: model(x).pow(2).mean(), "ema": ["target.*"]}

    assert_status(verdict(later, "training.frozen"), Status.PASSED)


class Averaged(nn.Module):
    """torch.optim.swa_utils.AveragedModel: a trainable-looking copy moved by
    update_parameters(), never by a gradient."""

    def __init__(self, update: bool = True) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)
        self.avg = torch.optim.swa_utils.AveragedModel(
            self.net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
        self.update = update

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if self.training else self.avg(x)


def averaged_spec(update: bool = True, **extra: Any) -> dict[str, Any]:
    def step(model: Averaged, x: torch.Tensor) -> torch.Tensor:
        loss = model(x).pow(2).mean()
        if model.update:
            model.avg.update_parameters(model.net)
        return loss

    return {"model": Averaged(update), "inputs": lambda b: torch.randn(b, 4), "step": step,
            **extra}


def test_averaged_copies_moved_without_a_gradient_are_not_dead_parameters() -> None:
    results = vet(averaged_spec, ["training.gradients", "training.update"])
    assert_status(results["training.gradients"], Status.PASSED,
                  "updated by the model's own code", '"avg.module.*"')
    assert_status(results["training.update"], Status.PASSED)


def test_averaged_copies_nothing_updates_still_fail() -> None:
    results = vet(lambda: averaged_spec(update=False),
                  ["training.gradients", "training.update"])
    assert_status(results["training.gradients"], Status.FAILED, "avg.module.weight",
                  "received no gradient")
    assert_status(results["training.update"], Status.FAILED, "avg.module.weight")
    declared = vet(lambda: averaged_spec(update=False, ema=["avg.module.*"]),
                   ["training.gradients", "training.update"])
    assert all(r.status is Status.PASSED for r in declared.values()), declared


class EveryFourth:
    """An optimizer wrapper that steps every 4th call (accumulate_grad_batches=4)."""

    def __init__(self, params: Any) -> None:
        self.optimizer = torch.optim.SGD(params, lr=0.1)
        self.param_groups = self.optimizer.param_groups
        self.calls = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.calls % 4 == 0:
            self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.calls += 1
        if self.calls % 4 == 0:
            self.optimizer.step()


def test_an_accumulating_optimizer_is_given_the_calls_it_accumulates_over() -> None:
    result = verdict(lambda: {"model": nn.Linear(4, 2), "inputs": torch.randn(2, 4),
                              "optimizer": EveryFourth}, "training.update")
    assert_status(result, Status.PASSED, "within 4 step(s)", "accumulates gradients")


def test_a_learning_rate_of_zero_still_fails_update() -> None:
    result = verdict(lambda: {"model": nn.Linear(4, 2), "inputs": torch.randn(2, 4),
                              "optimizer": lambda p: torch.optim.SGD(p, lr=0.0)},
                     "training.update")
    assert_status(result, Status.FAILED, "did not change within 8 optimizer step(s)",
                  "learning rate 0")
