"""data.labels: class ids within range, probabilities within [0, 1], 1-based labels
named as such; regression targets and ignore_index are not false alarms."""

from __future__ import annotations

from typing import Any

import torch

from tests.fixtures import data_fixtures as fx
from tests.helpers import assert_status, method_line, verdict, vet
from torchvet.project.config import UnitConfig
from torchvet.results import Status


def test_ignore_index_in_token_labels_is_not_out_of_range() -> None:
    result = verdict(fx.token_classification, "data.labels", kind="dataset")
    assert_status(result, Status.PASSED, '["labels"]', "within [0, 5)")


def test_one_based_labels_fail_when_num_classes_is_declared() -> None:
    result = verdict(fx.one_based_declared, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "labels run 1..3", "[1] = 3", "look 1-based",
                  "subtract 1 in __getitem__", "num_classes=3")
    assert result.line == method_line(fx.TupleSamples, "__getitem__")


def test_one_based_labels_warn_when_num_classes_is_unknown() -> None:
    result = verdict(fx.one_based_undeclared, "data.labels", kind="dataset")
    assert_status(result, Status.WARNED, "run 1..3", "no sample of 21 has label 0",
                  "look 1-based", "subtract 1")


def test_one_based_labels_against_the_models_output_classes() -> None:
    def factory() -> dict[str, Any]:
        return {"model": fx.Classifier(), "loss": torch.nn.CrossEntropyLoss(),
                "dataset": fx.OneBased(), "batch_size": 4}

    result = verdict(factory, "data.labels")
    assert_status(result, Status.FAILED, "look 1-based", "the CrossEntropyLoss in the spec")


def test_one_based_labels_at_a_declared_label_position() -> None:
    result = verdict(fx.label_first_one_based, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "[0] = 3", "look 1-based")


def test_label_outside_the_class_range() -> None:
    result = verdict(fx.out_of_range, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[13][1] = 3 is outside [0, 3)",
                  "fix the labels or num_classes")


def test_float_class_labels_fail_when_num_classes_is_declared() -> None:
    result = verdict(fx.float_labels_declared, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[0][1] is a float32 label",
                  "num_classes=3", "integer (int64) class ids", "dtype=torch.long")


def test_float_class_labels_fail_under_a_cross_entropy_loss() -> None:
    results = vet(fx.float_labels_with_ce, ["data.labels", "data.model_fit"])
    assert_status(results["data.labels"], Status.FAILED, "float32 label",
                  "the CrossEntropyLoss in the spec")
    assert_status(results["data.model_fit"], Status.FAILED, "the loss raised",
                  "labels [1]: (4,) float32", "CrossEntropyLoss needs int64 class ids")


def test_float_targets_without_classes_are_regression_not_a_bug() -> None:
    result = verdict(fx.float_labels_undeclared, "data.labels", kind="dataset")
    assert_status(result, Status.SKIPPED, "regression targets", "declare num_classes")


def test_dict_samples_name_the_label_key() -> None:
    def factory() -> dict[str, Any]:
        dataset = fx.DictSamples()
        dataset.y = [y + 1 for y in dataset.y]
        return {"dataset": dataset, "num_classes": fx.CLASSES}

    result = verdict(factory, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, '["label"] = 3', "look 1-based")


def test_label_location_from_config() -> None:
    result = verdict(lambda: fx.LabelFirst(low=5), "data.labels", kind="dataset",
                     config=UnitConfig(label=0, num_classes=3))
    assert_status(result, Status.FAILED, "dataset[", "[0] = 7 is outside [0, 3)")


def test_samples_without_a_label_skip_with_the_way_to_declare_one() -> None:
    result = verdict(lambda: torch.utils.data.TensorDataset(torch.randn(6, 3)), "data.labels",
                     kind="dataset")
    assert_status(result, Status.SKIPPED, "no label in the samples", "'label'")


def test_integer_labels_under_bce_fail() -> None:
    def factory() -> dict[str, Any]:
        return {"model": fx.Classifier(classes=1), "loss": torch.nn.BCEWithLogitsLoss(),
                "dataset": fx.TupleSamples(), "batch_size": 4}

    result = verdict(factory, "data.labels")
    assert_status(result, Status.FAILED, "integer label", "BCEWithLogitsLoss",
                  "dtype=torch.float32")
