"""learning.progress: with the user's loss, optimizer and data, the model learns at all.

With a dataset and a loss: the declared optimizer trains on the dataset's batches and the
loss on held-out samples must beat the best constant prediction (the mean target, the
class frequencies). The run goes on in chunks while the training loss still falls, so a
slow learner (a sigmoid net on XOR sits on a plateau for 250 steps) gets its steps; it
stops as soon as the baseline is beaten. Without a dataset, the loss on one batch must at
least move off its value at init. A model stuck at the baseline is warned with the
learning diagnostics' finding as its probable cause.
"""

from __future__ import annotations

import math

from ...unit.context import CheckContext
from ...verdict import Outcome, Skip, passed, warned
from ..causes.findings import cause_phrase, curve, likely_causes
from ..registry import check
from ..shared.probe import adversarial, init_probe
from ..shared.runs import WINDOW, ProgressRun, batch_run, dataset_source, progress_run, rate_steps

STILL = 0.01  # relative change of the one-batch loss that counts as not moving
TRAIN_FALL = 0.02  # relative fall of the training loss over a run that counts as learning


@check("learning.progress")
def progress(ctx: CheckContext) -> Outcome:
    spec = ctx.spec
    if spec is None or not spec.has_real_loss:
        raise Skip("no loss or step declared: whether the model learns needs its real loss")
    if dataset_source(ctx) is not None and spec.loss is not None and spec.step is None:
        return _judge(ctx, progress_run(ctx))
    return _moves(ctx)


def _judge(ctx: CheckContext, run: ProgressRun) -> Outcome:
    evals = [v for _, v in run.eval_losses]
    data = {"curves": {"held-out loss": curve(evals)}}
    if run.baseline is not None:
        data["curves"][f"constant baseline ({run.baseline_kind})"] = [run.baseline] * 2
    where = "held-out" if run.held_out else "training"
    against = (f"the constant baseline ({run.baseline_kind}: {run.baseline:.4g})"
               if run.baseline is not None else f"its value at init ({evals[0]:.4g})")
    if run.outcome == "diverged":
        raise Skip(f"the loss diverges after {run.steps} steps (see learning.learning_rate)")
    if run.outcome == "beaten":
        return passed(f"{where} loss {evals[0]:.4g} -> {min(evals):.4g} in {run.steps} steps, "
                      f"below {against}", data=data)
    if run.outcome == "falling":
        return passed(f"{where} loss {evals[0]:.4g} -> {min(evals):.4g} in {run.steps} steps "
                      f"and still falling, not yet below {against}: a slow learner",
                      data=data)
    train = run.train_losses
    head, tail = _mean(train[:WINDOW]), _mean(train[-WINDOW:])
    held_fell = not run.held_out or evals[0] - evals[-1] >= TRAIN_FALL * abs(evals[0])
    if run.outcome == "stuck" and head - tail >= TRAIN_FALL * abs(head) and held_fell:
        # its training (and held-out) loss falls, only not past the baseline yet: a slow
        # learner on its plateau (XOR; a tiny dataset trained for thousands of epochs).
        # A training loss that falls while the held-out one does not is memorising labels
        # the inputs do not explain (shuffled apart): that warns below
        return passed(f"the training loss falls ({head:.4g} -> {tail:.4g}) in {run.steps} "
                      f"steps ({_epochs(ctx, run)} on {run.train_samples} samples) while the "
                      f"{where} loss is not yet below {against}: a slow learner", data=data)
    causes = likely_causes(ctx)
    details = "\n".join(f"{c.check}: {c.message}" for c in causes)
    if run.outcome == "memorising":
        # a small dataset overfits as readily as shuffled labels do: not a verdict
        train = run.train_losses
        return passed(
            f"the training loss falls ({train[0]:.4g} -> {min(train[-40:]):.4g}) while the "
            f"held-out loss rises to {evals[-1]:.4g}, above {against}, in {run.steps} steps: "
            "the model fits its training samples (a small dataset overfits; if it should "
            "generalise, check that labels and inputs stay paired)", data=data)
    return warned(
        f"after {run.steps} steps ({_epochs(ctx, run)}) on {run.train_samples} samples the "
        f"training loss stays at {tail:.4g} (from {head:.4g}) and the {where} loss is "
        f"{evals[-1]:.4g} (from {evals[0]:.4g}), no better than {against}: the model "
        "learns nothing the inputs tell it — check what the output is read from, that the "
        f"target is the one meant, and the learning diagnostics{cause_phrase(causes)}",
        details, (causes[0].where if causes else None) or ctx.where_model(), data)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _epochs(ctx: CheckContext, run: ProgressRun) -> str:
    seen = run.steps * min(ctx.batch_size, run.train_samples)
    return f"{seen / max(run.train_samples, 1):.3g} epochs"


def _moves(ctx: CheckContext) -> Outcome:
    spec = ctx.spec
    assert spec is not None
    if adversarial(ctx, init_probe(ctx)):
        raise Skip("the step sums opposing objectives (a GAN's generator and discriminator, "
                   "or training=\"adversarial\" is declared): its sum need not move")
    trainable = sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)
    if spec.optimizer is None and not spec.within_overfit_budget(trainable):
        raise Skip(f"{trainable:,} trainable parameters exceed the overfit budget of "
                   f"{spec.overfit_max_params:,} and no optimizer is declared: no one-batch "
                   "run to read (declare a dataset or an optimizer, or raise "
                   "overfit_max_params)")
    # the declared optimizer's run (learning.learning_rate reads it too), else the run
    # training.overfit starts with; it ends as soon as the loss moves
    run = batch_run(ctx, "declared" if spec.optimizer is not None else "adam-0.01")
    losses = run.until(ctx, rate_steps(ctx), _moved)
    data = {"curves": {run.optimizer: curve(losses)}}
    if not math.isfinite(losses[-1]) or _moved(losses):
        return passed(f"the loss moves off its init with {run.optimizer}: {losses[0]:.4g} -> "
                      f"{losses[-1]:.4g} in {len(losses) - 1} steps on one batch "
                      "(declare a dataset to judge it against a baseline)", data=data)
    causes = likely_causes(ctx)
    return warned(
        f"the loss does not move off its init with {run.optimizer}: {losses[0]:.4g} -> "
        f"{losses[-1]:.4g} in {len(losses) - 1} steps on one batch{cause_phrase(causes)}",
        "\n".join(f"{c.check}: {c.message}" for c in causes),
        (causes[0].where if causes else None) or ctx.where_model(), data)


def _moved(losses: list[float]) -> bool:
    return abs(losses[-1] - losses[0]) / max(abs(losses[0]), 1e-12) >= STILL
