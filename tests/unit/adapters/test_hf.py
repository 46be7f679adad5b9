"""unit.adapters.hf on real tiny transformers models returned as bare modules: inputs from
dummy_inputs (or the config for pixel models), the model's own loss through labels=,
config.num_labels as the label range — and a bug still flagged through the adapter."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("transformers")

from tests.fixtures import models_hf
from tests.helpers import assert_status, vet
from torchvet.project.config import UnitConfig
from torchvet.results import Status
from torchvet.unit.spec import normalize_model

TRAINING = ["forward.runs", "training.loss", "training.gradients", "training.update"]


def problems(results: dict) -> list[str]:
    return [f"{r.id}: {r.status.value}: {r.message}" for r in results.values()
            if r.status not in (Status.PASSED, Status.SKIPPED)]


def test_a_causal_lm_passes_every_default_check_trained_on_its_own_loss() -> None:
    results = vet(models_hf.tiny_gpt2_lm)
    assert not problems(results), problems(results)
    assert_status(results["forward.runs"], Status.PASSED,
                  'kwargs["input_ids"]', "inputs: GPT2LMHeadModel.dummy_inputs")
    assert_status(results["training.loss"], Status.PASSED,
                  "from GPT2LMHeadModel(**inputs, labels=input_ids).loss")
    # a real loss unlocks the checks the surrogate cannot run
    assert_status(results["training.overfit"], Status.PASSED)
    assert_status(results["training.loss_at_init"], Status.PASSED, "ln(100)")


def test_a_sequence_classifier_gets_its_label_range_from_the_config() -> None:
    spec = normalize_model(models_hf.tiny_bert_classifier(), "bert", UnitConfig(), seed=0)
    assert spec.num_classes == 3 and spec.step is not None and spec.loss is None
    results = vet(models_hf.tiny_bert_classifier, [*TRAINING, "training.loss_at_init"])
    assert not problems(results), problems(results)
    assert_status(results["training.loss"], Status.PASSED,
                  "labels=random classes in [0, config.num_labels=3)")
    first_loss = float(results["training.loss"].message.split()[1])
    assert abs(first_loss - math.log(3)) < 0.5


def test_a_vision_model_gets_pixel_values_from_its_config() -> None:
    results = vet(models_hf.tiny_vit_classifier, TRAINING)
    assert not problems(results), problems(results)
    assert_status(results["forward.runs"], Status.PASSED, "(2, 3, 16, 16) float32",
                  "ViTForImageClassification.config (num_channels=3, image_size=16)")


def test_a_model_without_a_loss_of_its_own_trains_against_the_surrogate_and_says_why() -> None:
    results = vet(models_hf.tiny_gpt2_base, TRAINING)
    assert not problems(results), problems(results)
    assert_status(results["training.loss"], Status.PASSED, "surrogate loss",
                  "GPT2Model computes no loss of its own")


def test_what_the_user_declares_wins_over_the_adapter() -> None:
    model = models_hf.tiny_gpt2_lm()

    def step(m: object, batch: dict) -> object:
        return m(**batch, labels=batch["input_ids"]).loss  # type: ignore[operator]

    declared = {"model": model, "inputs": {"input_ids": models_hf.torch_ids(7)},
                "step": step}
    spec = normalize_model(declared, "lm", UnitConfig(), seed=0)
    assert spec.step is step and spec.inputs is not None
    assert spec.inputs.description == "the spec's inputs" and "loss" not in spec.sources


def test_a_frozen_embedding_is_still_flagged_through_the_adapter() -> None:
    result = vet(models_hf.gpt2_with_frozen_embeddings, ["training.frozen"])["training.frozen"]
    assert_status(result, Status.WARNED, "transformer.wte.weight")
