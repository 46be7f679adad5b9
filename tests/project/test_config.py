"""[tool.torchvet]: every key validated, errors name the file and the key."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT
from torchvet.project.config import (
    DATASET_KEYS,
    GLOBAL_KEYS,
    MODEL_KEYS,
    ConfigError,
    UnitConfig,
    parse_config,
)


def parse(table: dict) -> object:
    return parse_config({"tool": {"torchvet": table}}, "proj/pyproject.toml")


def test_full_configuration() -> None:
    config = parse({
        "seed": 3, "fail-on": "warning", "jobs": 2, "timeout": 120, "batch_size": 4,
        "checks": ["forward", "-forward.determinism"], "skip": {"export.*": "slow"},
        "models": {
            "vit": {"input_shape": [3, 224, 224], "timeout": 600, "frozen": ["patch_embed.*"],
                    "tolerance": {"atol": 1e-4}, "xfail": ["state.roundtrip"]},
            "bert": {"inputs": {"input_ids": {"shape": [16], "dtype": "int64", "high": 1000},
                                "attention_mask": {"shape": [16], "dtype": "bool", "fill": 1}}},
        },
        "datasets": {"train": {"num_classes": 10, "label": "y", "max_samples": 64}},
    })
    assert (config.seed, config.fail_on, config.jobs) == (3, "warning", 2)
    vit = config.for_unit("model", "vit")
    assert vit.timeout == 600 and vit.batch_size == 4
    assert vit.inputs == {"args": [{"shape": (3, 224, 224), "dtype": "float32"}], "kwargs": {}}
    assert vit.frozen == ("patch_embed.*",) and vit.tolerance == {"atol": 1e-4}
    assert vit.skip == {"export.*": "slow"}
    assert vit.xfail == {"state.roundtrip": "declared in [tool.torchvet]"}
    bert = config.for_unit("model", "bert")
    assert bert.inputs["kwargs"]["input_ids"] == {"shape": (16,), "dtype": "int64", "high": 1000}
    assert bert.timeout == 120
    data = config.for_unit("dataset", "train")
    assert (data.num_classes, data.label, data.max_samples) == (10, "y", 64)
    assert config.unknown_units({"vit"}, {"train"}) == ["models.bert"]


def test_command_line_overrides_sit_between_global_and_unit_tables() -> None:
    config = parse({"timeout": 100, "models": {"slow": {"timeout": 900}}})
    assert config.for_unit("model", "fast", {"timeout": 30}).timeout == 30
    assert config.for_unit("model", "slow", {"timeout": 30}).timeout == 900
    assert config.for_unit("model", "fast", {"timeout": None}).timeout == 100


def test_defaults_without_a_table() -> None:
    config = parse_config({}, "pyproject.toml")
    assert config.for_unit("model", "x") == UnitConfig()
    assert config.pytest is False


def test_pytest_key_turns_the_plugin_on_for_the_project() -> None:
    config = parse({"pytest": True, "seed": 1})
    assert config.pytest is True and "pytest" not in config.defaults


@pytest.mark.parametrize(("table", "fragment"), [
    ({"timout": 5}, "unknown key 'timout' (did you mean 'timeout'?)"),
    ({"timeout": -1}, "timeout = -1 is invalid: expected a positive number"),
    ({"seed": "zero"}, "seed = 'zero' is invalid: expected an integer"),
    ({"fail_on": "always"}, 'expected one of "failure", "warning", "never"'),
    ({"pytest": "yes"}, "pytest = 'yes' is invalid: expected true or false"),
    ({"models": {"m": {"pytest": True}}}, "[tool.torchvet.models.m] unknown key 'pytest'"),
    ({"checks": "forward"} | {"skip": 3}, "skip = 3 is invalid"),
    ({"models": {"m": {"input_dtype": "int64"}}}, "input_dtype needs input_shape"),
    ({"models": {"m": {"input_shape": [3, "x"]}}}, "a list of integers"),
    ({"models": {"m": {"tolerance": {"eps": 1}}}}, "only atol/rtol"),
    ({"models": {"m": {"label": "y"}}}, "[tool.torchvet.models.m] unknown key 'label'"),
    ({"models": {"m": {"inputs": {"ids": {"shape": [4], "dtype": "int65"}}}}}, "a dtype name"),
    ({"models": []}, "[tool.torchvet.models] must be a table"),
])
def test_invalid_values_name_file_and_key(table: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(table)
    assert "proj/pyproject.toml" in str(info.value)
    assert fragment in str(info.value)


def test_every_key_is_described_and_in_the_readme() -> None:
    tables = {**GLOBAL_KEYS, **MODEL_KEYS, **DATASET_KEYS}
    assert {"timeout", "seed", "input_shape", "label"} <= set(tables)
    assert all(description for _, description in tables.values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not [key for key in tables if f"`{key}`" not in readme and f"{key} = " not in readme]


def test_training_and_ema_are_validated_model_keys() -> None:
    config = parse({"models": {"gan": {"training": "adversarial", "ema": ["target.*"]}}})
    unit = config.for_unit("model", "gan")
    assert unit.training == "adversarial" and unit.ema == ("target.*",)
    with pytest.raises(ConfigError, match='training = \'min-max\' is invalid: expected '
                                          '"standard" or "adversarial"'):
        parse({"models": {"gan": {"training": "min-max"}}})
    with pytest.raises(ConfigError, match="unknown key 'ema'"):
        parse({"datasets": {"train": {"ema": ["x"]}}})


def test_the_training_step_is_declared_per_model() -> None:
    config = parse({"models": {"lm": {"clip_grad_norm": 0.25, "accumulate": 4, "amp": "bf16"}}})
    unit = config.for_unit("model", "lm")
    assert (unit.clip_grad_norm, unit.accumulate, unit.amp) == (0.25, 4, "bf16")
    with pytest.raises(ConfigError, match="amp = 'fp8' is invalid"):
        parse({"models": {"lm": {"amp": "fp8"}}})


def test_batch_dim_is_a_dim_or_a_table_per_leaf() -> None:
    config = parse({"models": {"lm": {"batch_dim": 1},
                               "graph": {"batch_dim": {"input": {"0": 1}, "output": {"0": 0}}}}})
    assert config.for_unit("model", "lm").batch_dim == 1
    assert config.for_unit("model", "graph").batch_dim == {"input": {"0": 1}, "output": {"0": 0}}
    with pytest.raises(ConfigError, match="batch_dim"):
        parse({"models": {"lm": {"batch_dim": {"inputs": {"0": 1}}}}})
    with pytest.raises(ConfigError, match="batch_dim"):
        parse({"models": {"lm": {"batch_dim": -1}}})
